-- The outcomes still awaited, and how many records each stands for.
SELECT p._token, COUNT(*) AS _n
FROM {{ pending }} AS p
WHERE p._token IS NOT NULL
GROUP BY p._token
