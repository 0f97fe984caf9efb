-- ...step 2 of 2: a key never delivered is recorded as parked only (_synced_at and hashes NULL).
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp)
SELECT k._key, NULL, k._kh, NULL, k._rkh, k._fp
FROM {{ acked }} AS k
WHERE NOT k._replace
