-- 1 when the snapshot holds no row at all (the first plan needs no comparison), else 0.
SELECT CASE WHEN EXISTS (SELECT 1 FROM {{ snapshot }} AS s) THEN 0 ELSE 1 END AS empty
