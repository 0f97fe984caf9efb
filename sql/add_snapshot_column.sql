-- A newly mapped destination field: its hash column starts NULL ("never delivered"), so the
-- next plan sends the field for every row. (Also adds internal columns of newer layouts.)
ALTER TABLE {{ snapshot }} ADD COLUMN {{ column }} {{ hash_type }}
