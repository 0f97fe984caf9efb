-- Candidates new to the snapshot (model rows whose raw key it does not hold) and gone from the
-- segment (snapshot rows no model row matches). Model rows that matched a snapshot row outnumber
-- the snapshot rows they matched only when a raw key occurs more than once in the model: then
-- the buckets tell where (cand_anomaly_count).
SELECT
  COUNT(CASE WHEN c._in_seg AND NOT c._in_snap THEN 1 END) AS new,
  COUNT(CASE WHEN c._in_snap AND NOT c._in_seg THEN 1 END) AS gone
FROM {{ cand }} AS c
