UPDATE "dinsync_state"."snap_people_to_crm" SET "_fp" = NULL, "_pfp" = NULL
WHERE
  NOT "_fp" IS NULL OR NOT "_pfp" IS NULL
