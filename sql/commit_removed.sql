-- Keys that left the segment leave the snapshot (they come back as added if they re-enter).
DELETE FROM {{ snapshot }}
WHERE _key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op = 'removed')
