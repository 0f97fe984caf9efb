SELECT
  COUNT(*) AS "stale"
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  NOT "s"."_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_state"."plan_people_to_crm" AS "p"
  )
