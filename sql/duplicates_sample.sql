-- The most duplicated keys of the segment, for the run report.
SELECT p._key, p._n
FROM {{ plan }} AS p
WHERE p._op = 'duplicate'
ORDER BY p._n DESC, p._key
LIMIT {{ param("limit") }}
