-- Per mapped field, how many changed rows send it.
SELECT
  {% for f in fields %}COUNT(CASE WHEN p.x{{ f.i }} THEN 1 END) AS n{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op = 'changed'
