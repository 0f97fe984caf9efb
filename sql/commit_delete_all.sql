-- Commit, step 1 of 2, when some acknowledged key was already committed by this run: drop the
-- snapshot rows of all the acknowledged keys...
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT k._kh FROM {{ acked }} AS k)
  AND _key IN (SELECT k._key FROM {{ acked }} AS k)
