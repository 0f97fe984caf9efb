{% from "_macros.sql" import fingerprint, raw_key_hash %}
-- The first plan (empty snapshot) or a full refresh: every model row in one pass, no comparison.
-- Rows whose key is NULL or empty are kept as 'skipped' (counted); duplicated keys are found next
-- (plan_all_duplicates). Columns as in plan.sql (the hashes of the values are computed by whoever
-- reads rows to commit them). For a full refresh, _prior says whether the snapshot holds the key
-- (so that a commit replaces its row).
CREATE TABLE {{ plan }} AS
SELECT
  k._key,
  CASE WHEN k._key IS NULL THEN 'skipped' ELSE 'added' END AS _op,
  {% for f in fields %}k.v{{ f.i }},{% endfor %}
  {% for f in fields %}TRUE AS x{{ f.i }},{% endfor %}
  CAST(1 AS BIGINT) AS _n,
  k._kh,
  k._rkh,
  k._fp,
  {% if full_refresh %}s._kh IS NOT NULL{% else %}FALSE{% endif %} AS _prior
FROM (
  SELECT
    j._key,
    CASE WHEN j._key IS NOT NULL THEN DINSYNC_HASH(j._key) END AS _kh,
    j._rkh,
    j._fp,
    {% for f in fields %}j.v{{ f.i }}{{ "," if not loop.last }}{% endfor %}
  FROM (
    SELECT
      {{ key_expr }} AS _key,
      {{ raw_key_hash(raw_key, key_column) }} AS _rkh,
      {{ fingerprint(fields, "m") }} AS _fp,
      {% for f in fields %}m.{{ f.col }} AS v{{ f.i }}{{ "," if not loop.last }}{% endfor %}
    FROM {{ model }} AS m
  ) AS j
) AS k
{% if full_refresh %}
-- a join, not `_kh IN (SELECT ...)`: PostgreSQL runs that once per row when the snapshot outgrows
-- work_mem (12+ minutes at 1M keys; tests/warehouses/test_pg_plan_shapes.py)
LEFT JOIN (SELECT DISTINCT s._kh FROM {{ snapshot }} AS s) AS s
  ON s._kh = k._kh
{% endif %}
