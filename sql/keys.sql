-- keys: one narrow row per model row; the only pass over every row of the segment.
--   _kh   hash of the normalised matching key; NULL when the key is NULL or empty
--   _fp   fingerprint of the row's mapped values (with their types): equal to the snapshot's
--         fingerprint means the row is unchanged, without hashing each value's text
--   _rkh  hash of the raw key text, so plan.sql can find a row again without normalising keys
CREATE {{ scratch }} TABLE {{ keys }} AS
SELECT
  CASE WHEN k._key IS NOT NULL THEN DINSYNC_HASH(k._key) END AS _kh,
  k._fp,
  k._rkh
FROM (
  SELECT
    {{ key_expr }} AS _key,
    DINSYNC_FINGERPRINT({% for f in fields joined by ", " %}m.{{ f.col }}{% endfor %}) AS _fp,
    DINSYNC_HASH(m.{{ key_column }}) AS _rkh
  FROM {{ model }} AS m
) AS k
