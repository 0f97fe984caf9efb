-- Buckets where a raw key occurs more than once among the model rows that matched a snapshot row
-- (matched model rows outnumber matched snapshot rows): their rows must all be looked at, so that
-- the duplicate is found. Usually none.
SELECT COUNT(*) AS anomalies
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
