UPDATE "dinsync_state"."snap_people_to_crm" SET "_kh" = CASE WHEN "_key" IS NULL THEN 0 ELSE FNV_HASH(CAST("_key" AS VARCHAR(65535))) END
WHERE
  "_kh" IS NULL
