SELECT
  COUNT(*) AS acknowledged,
  COUNT(CASE WHEN k._replace THEN 1 END) AS replace
  {% if position %}, MIN(k._rn) AS lo, MAX(k._rn) AS hi{% endif %}
FROM {{ acked }} AS k
