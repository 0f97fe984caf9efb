-- Pending records acknowledged ({{ tables.ack }}: their keys), step 1 of 2 (one transaction): drop
-- their snapshot rows...
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT p._kh FROM {{ pending }} AS p WHERE p._key IN (SELECT a._key FROM {{ tables.ack }} AS a))
  AND _key IN (SELECT p._key FROM {{ pending }} AS p WHERE p._key IN (SELECT a._key FROM {{ tables.ack }} AS a))
