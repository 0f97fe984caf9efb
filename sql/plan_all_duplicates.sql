-- First plan / full refresh: how many key hashes occur more than once (usually none).
SELECT COUNT(*) AS duplicated
FROM (
  SELECT p._kh
  FROM {{ plan }} AS p
  WHERE p._op = 'added'
  GROUP BY p._kh
  HAVING COUNT(*) > 1
) AS d
