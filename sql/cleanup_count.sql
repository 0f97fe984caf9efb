-- The snapshot rows commit_full_refresh_cleanup deletes (keys out of the segment, or duplicated in it).
SELECT COUNT(*) AS stale
FROM {{ snapshot }} AS s
WHERE NOT EXISTS (
  SELECT 1 FROM {{ plan }} AS p WHERE p._kh = s._kh AND p._key = s._key AND p._op NOT IN ('duplicate', 'withheld')
)
