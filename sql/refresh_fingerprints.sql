-- Candidates that turned out unchanged field by field (their fingerprint changed because a column
-- type or the mapping changed): store their new fingerprint so the next plan skips them again.
-- The rows are read again and checked field by field in this same statement, so the fingerprint
-- stored always belongs to values equal to what was delivered. Only _fp is touched.
UPDATE {{ snapshot }} AS s
SET _fp = u._fp
FROM (
  SELECT
    {{ key_expr }} AS _key,
    {% for f in fields joined by ", " %}DINSYNC_HASH(m.{{ f.col }}) AS h{{ f.i }}{% endfor %},
    DINSYNC_FINGERPRINT({% for f in fields joined by ", " %}m.{{ f.col }}{% endfor %}) AS _fp
  FROM {{ model }} AS m
  WHERE DINSYNC_HASH(m.{{ key_column }}) IN (SELECT c._rkh FROM {{ candidates }} AS c)
) AS u
WHERE s._key = u._key
  AND (s._fp IS NULL OR s._fp <> u._fp)
  AND {% for f in fields joined by " AND " %}s.{{ f.snap }} = u.h{{ f.i }}{% endfor %}
  AND s._key NOT IN (SELECT p._key FROM {{ plan }} AS p)
