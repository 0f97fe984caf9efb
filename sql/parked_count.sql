-- Keys parked as rejected (waiting until their values change).
SELECT COUNT(*) AS parked
FROM {{ snapshot }} AS s
WHERE s._pfp IS NOT NULL
