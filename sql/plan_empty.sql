-- Nothing differs from the snapshot: an empty plan (same columns as plan.sql).
CREATE TABLE {{ plan }} AS
SELECT
  CAST(NULL AS VARCHAR) AS _key,
  CAST(NULL AS VARCHAR) AS _op,
  {% for f in fields %}m.{{ f.col }} AS v{{ f.i }},{% endfor %}
  {% for f in fields %}CAST(NULL AS BOOLEAN) AS x{{ f.i }},{% endfor %}
  CAST(NULL AS BIGINT) AS _n,
  CAST(NULL AS {{ hash_type }}) AS _kh,
  CAST(NULL AS {{ hash_type }}) AS _rkh,
  CAST(NULL AS {{ hash_type }}) AS _fp,
  CAST(NULL AS BOOLEAN) AS _prior
FROM {{ model }} AS m
WHERE FALSE
