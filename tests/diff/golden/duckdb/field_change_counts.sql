SELECT
  COUNT(CASE WHEN "p"."x0" THEN 1 END) AS "n0",
  COUNT(CASE WHEN "p"."x1" THEN 1 END) AS "n1",
  COUNT(CASE WHEN "p"."x2" THEN 1 END) AS "n2",
  COUNT(CASE WHEN "p"."x3" THEN 1 END) AS "n3"
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" = 'changed'
