-- What the destination has to receive: added and changed rows, values and send flags.
SELECT
  p._key,
  p._op,
  {% for f in fields joined by ", " %}p.v{{ f.i }}{% endfor %},
  {% for f in fields joined by ", " %}p.x{{ f.i }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
