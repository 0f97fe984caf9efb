-- A field mapped after rows went pending: their hash stays NULL ("never delivered"), so the field
-- is sent for them once they are acknowledged.
ALTER TABLE {{ pending }} ADD COLUMN {{ column }} {{ hash_type }}
