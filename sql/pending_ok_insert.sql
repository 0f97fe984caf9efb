-- ...step 2 of 2: record what was delivered, as kept when it was sent. A record sent before a
-- field was mapped has no hash for it (NULL: never delivered) and enters without a fingerprint,
-- so that the next plan compares it field by field and sends that field (a renamed destination
-- field reads the same model columns: the fingerprint alone would not show it).
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp, {% for f in fields %}{{ f.snap }}{{ ", " if not loop.last }}{% endfor %})
SELECT
  p._key,
  CAST({{ param("now") }} AS {{ timestamp_type }}),
  p._kh,
  CASE WHEN {% for f in fields %}p.{{ f.snap }} IS NULL{{ " OR " if not loop.last }}{% endfor %} THEN NULL ELSE p._fp END,
  p._rkh,
  NULL,
  {% for f in fields %}p.{{ f.snap }}{{ "," if not loop.last }}{% endfor %}
FROM {{ pending }} AS p
WHERE p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
