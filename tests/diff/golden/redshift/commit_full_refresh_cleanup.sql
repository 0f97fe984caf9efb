DELETE FROM "dinsync_state"."snap_people_to_crm"
WHERE
  NOT "_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_state"."plan_people_to_crm" AS "p"
  )
