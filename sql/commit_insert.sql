-- Commit, step 2 of 2: ...and record what was delivered: the plan's hashes of every mapped field.
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, {% for f in fields joined by ", " %}{{ f.snap }}{% endfor %})
SELECT
  k._key,
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP),
  k._kh,
  k._fp,
  {% for f in fields joined by ", " %}k.h{{ f.i }}{% endfor %}
FROM {{ acked }} AS k
