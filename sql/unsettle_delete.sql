-- Unsettling, step 2 of 3 (see unsettle_stage.sql): drop the snapshot rows...
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT u._kh FROM {{ unsettle }} AS u)
  AND _key IN (SELECT u._key FROM {{ unsettle }} AS u)
