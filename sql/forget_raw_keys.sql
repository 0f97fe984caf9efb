-- The key normalisation changed (a phone key's default region): the same raw key text may now be
-- another key. The snapshot's rows forget their raw key hash, so that the next plan reads every
-- model row's key again: a key that stayed the same is matched as before ('rekey', nothing sent),
-- a key that changed is added, and the snapshot row of its old key removed.
UPDATE {{ snapshot }} SET _rkh = NULL WHERE _rkh IS NOT NULL
