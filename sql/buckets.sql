{% from "_macros.sql" import expected_fp, expected_rows, seg_rows with context %}
-- A pass over every model row (or over what seg.sql kept of them) and one over the snapshot: model rows
-- and snapshot rows are spread over {{ nbuckets }} buckets by the hash of their raw key text, and
-- each bucket gets a row count and an order-independent digest of (raw key hash, fingerprint).
-- A bucket whose count and digest equal the snapshot's holds only unchanged rows: when every
-- bucket does, nothing changed and the plan is done. Keys are not normalised here.
-- Bucket {{ nbuckets }} counts the model rows whose key is NULL or empty; bucket
-- {{ nbuckets + 1 }} holds snapshot rows without a raw key hash (older layouts: always dirty).
-- A parked row is expected with its parked fingerprint, so it costs nothing until it changes.
CREATE TABLE {{ buckets }} AS
WITH seg AS (
  SELECT
    COALESCE(r._rkh % {{ nbuckets }}, {{ nbuckets }}) AS _b,
    COUNT(*) AS _n,
    DINSYNC_DIGEST(DINSYNC_ROWHASH(r._rkh, r._fp)) AS _d
  FROM {{ seg_rows() }} AS r
  GROUP BY COALESCE(r._rkh % {{ nbuckets }}, {{ nbuckets }})
),
snap AS (
  SELECT
    COALESCE(s._rkh % {{ nbuckets }}, {{ nbuckets + 1 }}) AS _b,
    COUNT(*) AS _n,
    COUNT({{ expected_fp("s", retry) }}) AS _n_fp,
    DINSYNC_DIGEST(DINSYNC_ROWHASH(s._rkh, {{ expected_fp("s", retry) }})) AS _d
  FROM {{ snapshot }} AS s
  WHERE {{ expected_rows("s", retry) }}
  GROUP BY COALESCE(s._rkh % {{ nbuckets }}, {{ nbuckets + 1 }})
)
SELECT
  COALESCE(a._b, b._b) AS _b,
  COALESCE(a._n, 0) AS _seg_n,
  COALESCE(b._n, 0) AS _snap_n,
  COALESCE(a._b, b._b) <> {{ nbuckets }} AND (
    a._b IS NULL OR b._b IS NULL OR a._n <> b._n OR b._n_fp <> b._n OR a._d <> b._d
  ) AS _dirty
FROM seg AS a
FULL OUTER JOIN snap AS b
  ON a._b = b._b
