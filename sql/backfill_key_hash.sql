-- Snapshots written before _kh existed: compute it once.
UPDATE {{ snapshot }}
SET _kh = DINSYNC_HASH(_key)
WHERE _kh IS NULL
