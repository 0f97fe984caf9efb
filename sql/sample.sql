-- A few rows of one kind of change, for `dinsync plan`.
SELECT
  p._key,
  {% for f in fields joined by ", " %}p.v{{ f.i }}, p.x{{ f.i }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op = {{ op }}
ORDER BY p._key
LIMIT {{ limit }}
