-- Acknowledged keys that were not in the range of positions looked at first: the rest of the plan.
INSERT INTO {{ acked }}
SELECT
  p.{{ position }} AS _rn,
  p._key,
  p._kh,
  p._rkh,
  p._fp,
  p._prior AS _replace,
  {% for f in fields %}p.h{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
  AND (p.{{ position }} < {{ param("lo") }} OR p.{{ position }} > {{ param("hi") }})
  AND p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
