{% from "_macros.sql" import seg_rows with context %}
-- In the buckets found by cand_anomaly_count, the raw keys that occur more than once among the
-- model rows become candidates (all their rows are read again, and the plan finds the duplicate).
-- Only those keys: at 2% churn nearly every bucket is dirty, and taking every row of a bucket
-- made a few thousand duplicated keys a comparison of the whole model.
INSERT INTO {{ cand }} (_rkh, _in_seg, _in_snap, _b)
SELECT r._rkh, TRUE, FALSE, r._rkh % {{ nbuckets }}
FROM {{ seg_rows(fp=False) }} AS r
WHERE r._rkh % {{ nbuckets }} IN (
  SELECT b._b
  FROM {{ buckets }} AS b
  LEFT JOIN (
    SELECT
      c._b,
      COUNT(CASE WHEN c._in_seg AND NOT c._in_snap THEN 1 END) AS _new,
      COUNT(CASE WHEN c._in_snap AND NOT c._in_seg THEN 1 END) AS _gone
    FROM {{ cand }} AS c
    GROUP BY c._b
  ) AS c
    ON c._b = b._b
  WHERE b._dirty AND b._b < {{ nbuckets }} AND b._seg_n - COALESCE(c._new, 0) > b._snap_n - COALESCE(c._gone, 0)
)
GROUP BY r._rkh
HAVING COUNT(*) > 1
