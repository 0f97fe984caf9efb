-- Keys that left the segment leave the snapshot (they come back as added if they re-enter), and
-- so do parked keys that were never delivered.
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT p._kh FROM {{ plan }} AS p WHERE p._op IN ('removed', 'forget'))
  AND _key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op IN ('removed', 'forget'))
