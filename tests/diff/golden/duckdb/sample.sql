SELECT
  "p"."_key",
  "p"."v0",
  "p"."x0",
  "p"."v1",
  "p"."x1",
  "p"."v2",
  "p"."x2",
  "p"."v3",
  "p"."x3"
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" = '__dinsync_param_op__'
ORDER BY
  "p"."_key" NULLS FIRST
LIMIT 9110000000000000003
