-- After a successful full refresh: forget keys that are no longer in the segment. A full-refresh
-- plan lists every key of the segment (as added or duplicate).
DELETE FROM {{ snapshot }} AS s
WHERE NOT EXISTS (SELECT 1 FROM {{ plan }} AS p WHERE p._kh = s._kh AND p._key = s._key)
