-- A few rows of one kind of change, for `dinsync plan`.
SELECT
  p._key,
  {% for f in fields %}p.v{{ f.i }}, p.x{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op = {{ param("op") }}
ORDER BY p._key
LIMIT {{ param("limit") }}
