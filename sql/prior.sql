-- The snapshot rows of the candidates: by normalised key, and the snapshot-only candidates (gone,
-- renamed by normalisation, or of older layouts without a raw key hash): one semi-join on _kh.
CREATE TABLE {{ prior }} AS
SELECT s.*
FROM {{ snapshot }} AS s
WHERE s._kh IN (
  SELECT DINSYNC_HASH(c._key) FROM {{ cur }} AS c WHERE c._key IS NOT NULL
  UNION ALL
  SELECT c._kh FROM {{ cand }} AS c WHERE c._in_snap AND NOT c._in_seg
)
