UPDATE "dinsync_state"."snap_people_to_crm" SET "_kh" = COALESCE(HASH(CAST("_key" AS VARCHAR)) % 9223372036854775807, 0)
WHERE
  "_kh" IS NULL
