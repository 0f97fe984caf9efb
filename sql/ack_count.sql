SELECT
  COUNT(*) AS acknowledged,
  COUNT(CASE WHEN k._replace THEN 1 END) AS replace
FROM {{ acked }} AS k
