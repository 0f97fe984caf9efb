-- The first plan (empty snapshot) of a warehouse that reads the model again as the plan streams
-- (Capabilities.lazy_first_plan): the model's rows are not written here, only what is not sent.
-- One pass over the model's keys: a 'skipped' row counting the rows whose key is NULL or empty,
-- and a 'collision' row per key hash found on several rows (plan_first_mark_duplicates tells
-- duplicated keys from colliding ones). The added rows are computed from the model when the plan
-- is read (plan_source in _macros.sql); plan_first_rows counts the model's rows.
CREATE TABLE {{ plan }} AS
SELECT
  CAST(NULL AS VARCHAR) AS _key,
  CASE WHEN h._kh IS NULL THEN 'skipped' ELSE 'collision' END AS _op,
  COUNT(*) AS _n,
  h._kh
FROM (
  SELECT CASE WHEN k._key IS NOT NULL THEN DINSYNC_HASH(k._key) END AS _kh
  FROM (SELECT {{ key_expr }} AS _key FROM {{ model }} AS m) AS k
) AS h
GROUP BY h._kh
HAVING h._kh IS NULL OR COUNT(*) > 1
