-- How many key hashes of a first plan that is not written (plan_first.sql) occur on several rows.
SELECT COUNT(*) AS collisions
FROM {{ plan }} AS p
WHERE p._op = 'collision'
