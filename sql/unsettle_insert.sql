-- Unsettling, step 3 of 3 (see unsettle_stage.sql): ...and put them back knowing nothing of what
-- was delivered (fingerprint, parked fingerprint and field hashes NULL).
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _rkh)
SELECT u._key, u._synced_at, u._kh, u._rkh
FROM {{ unsettle }} AS u
