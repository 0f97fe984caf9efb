-- The snapshot rows commit_full_refresh_cleanup deletes (keys out of the segment, or duplicated in
-- it), and among them the delivered keys out of the segment (`gone`: a full refresh's `removed`,
-- which its plan counts too; a parked key never delivered is not removed, as in plan.sql).
SELECT
  COUNT(*) AS stale,
  COUNT(CASE WHEN d._kh IS NULL AND s._synced_at IS NOT NULL THEN 1 END) AS gone
FROM {{ snapshot }} AS s
LEFT JOIN (SELECT DISTINCT p._kh, p._key FROM {{ plan }} AS p WHERE p._op = 'duplicate') AS d
  ON d._kh = s._kh AND d._key = s._key
WHERE NOT EXISTS (
  SELECT 1 FROM {{ plan }} AS p WHERE p._kh = s._kh AND p._key = s._key AND p._op NOT IN ('duplicate', 'withheld')
)
