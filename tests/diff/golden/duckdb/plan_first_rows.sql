SELECT
  COUNT(*) AS "model_rows"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
