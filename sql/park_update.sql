{% from "_macros.sql" import commit_rows with context %}
-- Rejected rows, step 1 of 2 (one transaction): a key the snapshot holds keeps what was delivered
-- and is parked with the rejected row's fingerprint...
UPDATE {{ snapshot }} AS s
SET _pfp = r._fp, _rkh = r._rkh
FROM (SELECT p._kh, p._key, p._fp, p._rkh FROM {{ commit_rows("replace") }}) AS r
WHERE s._kh = r._kh
  AND s._key = r._key
