{% from "_macros.sql" import commit_rows with context %}
-- ...step 2 of 2: a key never delivered is recorded as parked only (_synced_at and hashes NULL).
{% if unfound %}
-- Without a row position, _replace comes from the planner's filter of committed keys, which takes
-- some keys for committed that are not: such a key, which step 1 found no snapshot row of, too.
{% endif %}
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp)
SELECT p._key, NULL, p._kh, NULL, p._rkh, p._fp
{% if unfound %}
FROM {{ commit_rows("replace") }}
  AND NOT EXISTS (SELECT 1 FROM {{ snapshot }} AS s WHERE s._kh = p._kh AND s._key = p._key)
{% else %}
FROM {{ commit_rows("new") }}
{% endif %}
