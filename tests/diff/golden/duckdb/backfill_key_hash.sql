UPDATE "dinsync_state"."snap_people_to_crm" SET "_kh" = HASH(CAST("_key" AS TEXT))
WHERE
  "_kh" IS NULL
