-- Counts of the plan just built (unchanged = keyed, non-duplicated rows not in the plan).
-- candidate_rows: model rows plan.sql compared field by field.
SELECT
  (SELECT COUNT(*) FROM {{ keys }}) AS segment_rows,
  (SELECT COUNT(*) FROM {{ keys }} AS k WHERE k._kh IS NULL) AS null_keys,
  (SELECT COUNT(c._rkh) FROM {{ candidates }} AS c) AS candidate_rows,
  COUNT(CASE WHEN p._op = 'duplicate' THEN 1 END) AS duplicate_keys,
  COALESCE(SUM(CASE WHEN p._op = 'duplicate' THEN p._n END), 0) AS duplicate_rows,
  COUNT(CASE WHEN p._op = 'added' THEN 1 END) AS added,
  COUNT(CASE WHEN p._op = 'changed' THEN 1 END) AS changed,
  COUNT(CASE WHEN p._op = 'removed' THEN 1 END) AS removed
FROM {{ plan }} AS p
