-- key_counts: rows, NULL keys and duplicated keys of one key of a model (`dinsync check`), in one
-- pass over the model. The key expression is the plan's ({{ key_expr }}: the key as text,
-- normalised like the destination does, '' counted as NULL), so the figures are the plan's.
SELECT
  COALESCE(SUM(g._n), 0) AS segment_rows,
  COALESCE(SUM(CASE WHEN g._key IS NULL THEN g._n END), 0) AS null_keys,
  COUNT(CASE WHEN g._key IS NOT NULL AND g._n > 1 THEN 1 END) AS duplicate_keys,
  COALESCE(SUM(CASE WHEN g._key IS NOT NULL AND g._n > 1 THEN g._n END), 0) AS duplicate_rows
FROM (
  SELECT {{ key_expr }} AS _key, COUNT(*) AS _n
  FROM {{ model }} AS m
  GROUP BY {{ key_expr }}
) AS g
