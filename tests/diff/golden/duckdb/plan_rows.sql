SELECT
  "p".*
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
