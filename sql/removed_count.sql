SELECT COUNT(*) AS removed
FROM {{ snapshot }} AS s
WHERE s._kh IN (SELECT p._kh FROM {{ plan }} AS p WHERE p._op = 'removed')
  AND s._key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op = 'removed')
