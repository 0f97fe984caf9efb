{% from "_macros.sql" import expected_fp, expected_rows, seg_rows with context %}
-- Candidates (the digest found a difference): every model row and every snapshot row are matched
-- by raw key hash. Kept: model rows whose raw key the snapshot does not hold or whose fingerprint differs
-- (_in_seg), and snapshot rows no model row matches (_in_snap only: gone, or renamed by
-- normalisation; with their key hash). cur.sql reads the candidates' model rows again, with values.
-- (_here is 1, not TRUE: Redshift takes no IS comparison of a boolean value in a SELECT list.)
CREATE TABLE {{ cand }} AS
WITH seg AS (
  SELECT r._rkh, r._fp
  FROM {{ seg_rows() }} AS r
  WHERE r._rkh IS NOT NULL
),
snap AS (
  SELECT s._rkh, s._kh, {{ expected_fp("s", retry) }} AS _efp, 1 AS _here
  FROM {{ snapshot }} AS s
  WHERE {{ expected_rows("s", retry) }}
)
SELECT
  COALESCE(a._rkh, b._rkh) AS _rkh,
  b._kh,
  a._rkh IS NOT NULL AS _in_seg,
  b._here IS NOT NULL AS _in_snap,
  COALESCE(a._rkh % {{ nbuckets }}, b._rkh % {{ nbuckets }}, {{ nbuckets + 1 }}) AS _b
FROM seg AS a
FULL OUTER JOIN snap AS b
  ON a._rkh = b._rkh
WHERE a._rkh IS NULL OR b._here IS NULL OR b._efp IS NULL OR a._fp <> b._efp
