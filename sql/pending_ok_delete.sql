-- Pending records acknowledged ({{ tables.ack }}: their keys), step 1 of 2 (one transaction): drop
-- their snapshot rows...
-- (A join, not a subquery in the subquery: Databricks' DELETE takes no nested subqueries.)
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT p._kh FROM {{ pending }} AS p JOIN {{ tables.ack }} AS a ON a._key = p._key)
  AND _key IN (SELECT p._key FROM {{ pending }} AS p JOIN {{ tables.ack }} AS a ON a._key = p._key)
