SELECT COUNT(*) AS stale
FROM {{ snapshot }} AS s
WHERE s._key NOT IN (SELECT p._key FROM {{ plan }} AS p)
