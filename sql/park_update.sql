-- Rejected rows, step 1 of 2 (one transaction): a key the snapshot holds keeps what was delivered
-- and is parked with the rejected row's fingerprint...
UPDATE {{ snapshot }} AS s
SET _pfp = k._fp, _rkh = k._rkh
FROM {{ acked }} AS k
WHERE k._replace
  AND s._kh = k._kh
  AND s._key = k._key
