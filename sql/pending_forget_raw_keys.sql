-- The key normalisation changed (see forget_raw_keys.sql): records whose outcome is awaited enter
-- the snapshot, once acknowledged, without their raw key hash, so that the next plan reads their
-- model rows' keys again.
UPDATE {{ pending }} SET _rkh = NULL WHERE _rkh IS NOT NULL
