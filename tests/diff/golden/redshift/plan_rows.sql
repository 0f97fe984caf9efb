SELECT
  "p".*
FROM "dinsync_state"."plan_people_to_crm" AS "p"
