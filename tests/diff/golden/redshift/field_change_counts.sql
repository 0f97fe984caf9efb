SELECT
  COUNT(CASE WHEN "p"."_op" = 'changed' AND "p"."x0" THEN 1 END) AS "c0",
  COUNT(CASE WHEN "p"."_op" = 'changed' AND "p"."x1" THEN 1 END) AS "c1",
  COUNT(CASE WHEN "p"."_op" = 'changed' AND "p"."x2" THEN 1 END) AS "c2",
  COUNT(CASE WHEN "p"."_op" = 'changed' AND "p"."x3" THEN 1 END) AS "c3"
FROM "dinsync_state"."plan_people_to_crm" AS "p"
