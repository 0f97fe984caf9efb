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
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v0" AS TEXT), 0), 0) AS "h0",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v1" AS TEXT), 0), 0) AS "h1",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v2" AS TEXT), 0), 0) AS "h2",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v3" AS TEXT), 0), 0) AS "h3"
FROM "dinsync_state"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" IN ('added', 'changed')
  AND "p"."_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_state"."ack_people_to_crm" AS "a"
  )
