UPDATE "dinsync_state"."snap_people_to_crm" SET "_kh" = COALESCE(HASH(CAST("_key" AS VARCHAR)), 0)
WHERE
  "_kh" IS NULL
