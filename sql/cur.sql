{% from "_macros.sql" import fingerprint, raw_key_hash %}
-- The candidates' model rows, read again with their values and their normalised key.
CREATE TABLE {{ cur }} AS
SELECT
  {{ key_expr }} AS _key,
  {{ raw_key_hash(raw_key, key_column) }} AS _rkh,
  {{ fingerprint(fields, "m") }} AS _fp,
  {% for f in fields %}m.{{ f.col }} AS v{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ model }} AS m
WHERE {{ raw_key_hash(raw_key, key_column) }} IN (SELECT c._rkh FROM {{ cand }} AS c WHERE c._in_seg)
