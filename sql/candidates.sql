-- candidates: the model rows (by raw key hash) and snapshot keys that plan.sql has to look at.
-- Keys are spread over buckets by their hash. A bucket whose digest (row count and an
-- order-independent sum of key and fingerprint hashes) equals the snapshot's holds only unchanged
-- keys and is skipped: first over {{ buckets }} coarse buckets (cheap; enough when nothing changed),
-- then over {{ fine_buckets }} fine buckets inside the coarse buckets that differ. In the fine
-- buckets that differ, a key is a candidate when it is new, gone, duplicated or its fingerprint
-- differs. For a full refresh the snapshot is ignored ({{ compare_snapshot }} is FALSE).
-- (The tables are named again in each step rather than through a shared CTE, which some
-- warehouses would materialise.)
CREATE {{ scratch }} TABLE {{ candidates }} AS
WITH seg_coarse AS (
  SELECT a._kh % {{ buckets }} AS _b, COUNT(*) AS _n, DINSYNC_DIGEST(DINSYNC_ROWHASH(a._kh, a._fp)) AS _d
  FROM {{ keys }} AS a
  WHERE a._kh IS NOT NULL
  GROUP BY a._kh % {{ buckets }}
),
snap_coarse AS (
  SELECT b._kh % {{ buckets }} AS _b, COUNT(*) AS _n, COUNT(b._fp) AS _n_fp, DINSYNC_DIGEST(DINSYNC_ROWHASH(b._kh, b._fp)) AS _d
  FROM {{ snapshot }} AS b
  WHERE {{ compare_snapshot }}
  GROUP BY b._kh % {{ buckets }}
),
dirty_coarse AS (
  SELECT COALESCE(a._b, b._b) AS _b
  FROM seg_coarse AS a
  FULL OUTER JOIN snap_coarse AS b
    ON a._b = b._b
  WHERE a._b IS NULL OR b._b IS NULL OR a._n <> b._n OR b._n_fp <> b._n OR a._d <> b._d
),
seg_fine AS (
  SELECT a._kh % {{ fine_buckets }} AS _b, COUNT(*) AS _n, DINSYNC_DIGEST(DINSYNC_ROWHASH(a._kh, a._fp)) AS _d
  FROM {{ keys }} AS a
  WHERE a._kh % {{ buckets }} IN (SELECT d._b FROM dirty_coarse AS d)
  GROUP BY a._kh % {{ fine_buckets }}
),
snap_fine AS (
  SELECT b._kh % {{ fine_buckets }} AS _b, COUNT(*) AS _n, COUNT(b._fp) AS _n_fp, DINSYNC_DIGEST(DINSYNC_ROWHASH(b._kh, b._fp)) AS _d
  FROM {{ snapshot }} AS b
  WHERE {{ compare_snapshot }} AND b._kh % {{ buckets }} IN (SELECT d._b FROM dirty_coarse AS d)
  GROUP BY b._kh % {{ fine_buckets }}
),
dirty_fine AS (
  SELECT COALESCE(a._b, b._b) AS _b
  FROM seg_fine AS a
  FULL OUTER JOIN snap_fine AS b
    ON a._b = b._b
  WHERE a._b IS NULL OR b._b IS NULL OR a._n <> b._n OR b._n_fp <> b._n OR a._d <> b._d
),
seg_keys AS (
  SELECT a._kh, COUNT(*) AS _n, MIN(a._fp) AS _fp, MIN(a._rkh) AS _rkh
  FROM {{ keys }} AS a
  WHERE a._kh % {{ fine_buckets }} IN (SELECT d._b FROM dirty_fine AS d)
  GROUP BY a._kh
),
snap_keys AS (
  SELECT b._kh, b._fp
  FROM {{ snapshot }} AS b
  WHERE {{ compare_snapshot }} AND b._kh % {{ fine_buckets }} IN (SELECT d._b FROM dirty_fine AS d)
),
changed_keys AS (
  SELECT COALESCE(a._kh, b._kh) AS _kh, a._n, a._rkh
  FROM seg_keys AS a
  FULL OUTER JOIN snap_keys AS b
    ON a._kh = b._kh
  WHERE a._kh IS NULL OR b._kh IS NULL OR a._n > 1 OR b._fp IS NULL OR a._fp <> b._fp
)
-- one row per model row to read again (_rkh), or per key that is only in the snapshot (_rkh NULL)
SELECT c._kh, c._rkh
FROM changed_keys AS c
WHERE c._n IS NULL OR c._n = 1
UNION ALL
SELECT c._kh, a._rkh
FROM changed_keys AS c
JOIN {{ keys }} AS a
  ON a._kh = c._kh
WHERE c._n > 1
