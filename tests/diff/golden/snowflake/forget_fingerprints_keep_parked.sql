UPDATE "dinsync_state"."snap_people_to_crm" SET "_fp" = NULL
WHERE
  NOT "_fp" IS NULL
