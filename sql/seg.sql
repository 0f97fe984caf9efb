{% from "_macros.sql" import fingerprint, raw_key_hash %}
-- The one pass over every model row of an everyday plan: per row, the hash of its raw key text
-- (NULL when the key is NULL or empty) and its fingerprint. Narrow; kept for the steps below.
CREATE TABLE {{ seg }} AS
SELECT
  {{ raw_key_hash(raw_key, key_column) }} AS _rkh,
  {{ fingerprint(fields, "m") }} AS _fp
FROM {{ model }} AS m
