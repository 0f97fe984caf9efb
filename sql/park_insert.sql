{% from "_macros.sql" import commit_rows with context %}
-- ...step 2 of 2: a key never delivered is recorded as parked only (_synced_at and hashes NULL).
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp)
SELECT p._key, NULL, p._kh, NULL, p._rkh, p._fp
FROM {{ commit_rows("new") }}
