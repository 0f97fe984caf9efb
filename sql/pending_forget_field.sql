-- A field whose `type:` changed (see forget_field.sql): records whose outcome is still awaited
-- delivered it in the old form; acknowledged later, they enter the snapshot without its hash
-- ("never delivered"), so the field is sent for them in its new form.
UPDATE {{ pending }} SET {{ column }} = NULL WHERE {{ column }} IS NOT NULL
