CREATE TABLE "dinsync_scratch"."acked_people_to_crm" AS
SELECT
  "p"."rowid" AS "_rn",
  "p"."_prior" AS "_replace"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
JOIN "dinsync_scratch"."ack_people_to_crm" AS "a"
  ON "p"."rowid" = "a"."_rn"
WHERE
  "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
  AND "p"."_key" = "a"."_key"
  AND "p"."_op" IN ('added', 'changed')
