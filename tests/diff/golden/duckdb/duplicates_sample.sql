SELECT
  "p"."_key",
  "p"."_n"
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" = 'duplicate'
ORDER BY
  "p"."_n" DESC,
  "p"."_key" NULLS FIRST
LIMIT 9110000000000000003
