-- ...step 2 of 2: record what was delivered, as kept when it was sent.
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp, {% for f in fields %}{{ f.snap }}{{ ", " if not loop.last }}{% endfor %})
SELECT
  p._key,
  CAST(CURRENT_TIMESTAMP AS TIMESTAMP),
  p._kh,
  p._fp,
  p._rkh,
  NULL,
  {% for f in fields %}p.{{ f.snap }}{{ "," if not loop.last }}{% endfor %}
FROM {{ pending }} AS p
WHERE p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
