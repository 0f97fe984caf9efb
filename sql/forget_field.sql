-- A mapped field whose `type:` (or `custom:`) changed: the values it delivered were written in
-- the old form (a date where a timestamp is wanted now, text where a number is), so its hashes
-- are forgotten ("never delivered") and the next plan sends it for every row. Followed by
-- forget_fingerprints: the rows' fingerprints, which hash the model's values, do not show it.
UPDATE {{ snapshot }} SET {{ column }} = NULL WHERE {{ column }} IS NOT NULL
