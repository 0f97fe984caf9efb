-- Per mapped field, how many changed rows of the plan send it (for `dinsync plan`; added rows
-- send every field). c{i} counts field i.
SELECT
  {% for f in fields joined by ", " %}COUNT(CASE WHEN p._op = 'changed' AND p.x{{ f.i }} THEN 1 END) AS c{{ f.i }}{% endfor %}
FROM {{ plan }} AS p
