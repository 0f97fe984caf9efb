CREATE TABLE "dinsync_state"."acked_people_to_crm" AS
SELECT
  "p"."_key",
  "p"."_kh",
  "p"."_fp",
  "p"."_rkh",
  "p"."_prior"
  OR "p"."_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_state"."ack_people_to_crm" AS "a"
    WHERE
      "a"."_again"
  ) AS "_replace",
  "p"."h0",
  "p"."h1",
  "p"."h2",
  "p"."h3"
FROM "dinsync_state"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" IN ('added', 'changed')
  AND "p"."_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_state"."ack_people_to_crm" AS "a"
  )
