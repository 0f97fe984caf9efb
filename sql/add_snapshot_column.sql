-- A newly mapped destination field: its hash column starts NULL ("never delivered"), so the
-- next plan sends the field for every row.
ALTER TABLE {{ snapshot }} ADD COLUMN {{ column }} {{ hash_type }}
