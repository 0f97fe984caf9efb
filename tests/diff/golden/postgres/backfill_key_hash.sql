UPDATE "dinsync_state"."snap_people_to_crm" SET "_kh" = COALESCE(HASHTEXTEXTENDED(CAST("_key" AS TEXT) COLLATE "C", 0), 0)
WHERE
  "_kh" IS NULL
