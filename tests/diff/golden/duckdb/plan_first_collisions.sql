SELECT
  COUNT(*) AS "collisions"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" = 'collision'
