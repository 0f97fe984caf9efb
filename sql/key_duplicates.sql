-- key_duplicates: the most duplicated values of one key of a model, for `dinsync check` (run only
-- when key_counts found duplicates).
SELECT g._key, g._n
FROM (
  SELECT {{ key_expr }} AS _key, COUNT(*) AS _n
  FROM {{ model }} AS m
  GROUP BY {{ key_expr }}
) AS g
WHERE g._key IS NOT NULL AND g._n > 1
ORDER BY g._n DESC, g._key
LIMIT {{ limit }}
