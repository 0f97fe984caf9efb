-- After a successful full refresh: forget keys that are no longer in the segment. A full-refresh
-- plan lists every key of the segment (as added or duplicate) and its _key is never NULL.
DELETE FROM {{ snapshot }}
WHERE _key NOT IN (SELECT p._key FROM {{ plan }} AS p)
