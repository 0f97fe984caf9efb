-- After a successful full refresh: forget keys that are no longer in the segment, and those on
-- several rows of it (duplicate; their rows withheld): a full refresh sends every row as if the
-- snapshot were empty (another destination, say), and what the snapshot held of a key it did not
-- send describes the destination of before; kept, a key back on one row with the values of then
-- would be "unchanged" and never reach the new one. A full-refresh plan lists every key of the
-- segment (as added, or duplicate and withheld).
DELETE FROM {{ snapshot }} AS s
WHERE NOT EXISTS (
  SELECT 1 FROM {{ plan }} AS p WHERE p._kh = s._kh AND p._key = s._key AND p._op NOT IN ('duplicate', 'withheld')
)
