-- Pending records rejected for their content, step 1 of 2: a key the snapshot holds keeps what
-- was delivered and is parked with the rejected row's fingerprint...
UPDATE {{ snapshot }} AS s
SET _pfp = r._fp, _rkh = r._rkh
FROM (
  SELECT p._kh, p._key, p._fp, p._rkh
  FROM {{ pending }} AS p
  WHERE p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
) AS r
WHERE s._kh = r._kh
  AND s._key = r._key
