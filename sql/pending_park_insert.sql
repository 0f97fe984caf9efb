-- ...step 2 of 2: a key never delivered is recorded as parked only.
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp)
SELECT p._key, NULL, p._kh, NULL, p._rkh, p._fp
FROM {{ pending }} AS p
WHERE p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
  AND NOT EXISTS (SELECT 1 FROM {{ snapshot }} AS s WHERE s._kh = p._kh AND s._key = p._key)
