-- Commit, step 2 of 2: ...and record what was delivered: the hashes of the values sent.
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp, {% for f in fields %}{{ f.snap }}{{ ", " if not loop.last }}{% endfor %})
SELECT
  k._key,
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP),
  k._kh,
  k._fp,
  k._rkh,
  NULL,
  {% for f in fields %}k.h{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ acked }} AS k
