UPDATE "dinsync_state"."snap_people_to_crm" SET "_kh" = HASH(CAST("_key" AS TEXT) COLLATE C)
WHERE
  "_kh" IS NULL
