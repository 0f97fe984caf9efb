SELECT COUNT(*) AS removed
FROM {{ snapshot }} AS s
WHERE s._key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op = 'removed')
