-- The snapshot rows of the candidates: by normalised key, by the raw key hash of a snapshot-only
-- candidate, and rows of older layouts without a raw key hash.
CREATE TABLE {{ prior }} AS
SELECT s.*
FROM {{ snapshot }} AS s
WHERE s._kh IN (SELECT DINSYNC_HASH(c._key) FROM {{ cur }} AS c WHERE c._key IS NOT NULL)
  OR s._rkh IN (SELECT c._rkh FROM {{ cand }} AS c WHERE c._in_snap AND NOT c._in_seg)
  OR s._rkh IS NULL
