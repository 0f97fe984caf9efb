-- A destination field mapped for the first time (its hash column is added next, NULL: "never
-- delivered"): the snapshot's rows forget their fingerprint, so that the next plan compares them
-- field by field and sends the new field for every row, also when the mapping reads the same
-- model columns as before (a destination field renamed: the fingerprint, which hashes those
-- columns' values, would be unchanged and the no-op check would skip every row). Run before the
-- column is added, so a run stopped in between leaves them to compare. Parked rows keep their
-- parked fingerprint: not sent again until their values change.
UPDATE {{ snapshot }} SET _fp = NULL WHERE _fp IS NOT NULL
