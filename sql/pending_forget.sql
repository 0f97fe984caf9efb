-- Pending records whose outcome was read ({{ tables.ack }}): no longer pending. (Records that failed
-- or were not found are simply forgotten here: not in the snapshot, they are sent again.)
DELETE FROM {{ pending }}
WHERE _key IN (SELECT a._key FROM {{ tables.ack }} AS a)
