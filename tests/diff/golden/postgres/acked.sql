CREATE TABLE "dinsync_state"."acked_people_to_crm" AS
SELECT
  "p"."_key",
  "p"."_kh",
  "p"."_fp",
  "p"."_rkh",
  "p"."_prior" OR "a"."_again" = 1 AS "_replace",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v0" AS TEXT) COLLATE "C", 0), 0) AS "h0",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v1" AS TEXT) COLLATE "C", 0), 0) AS "h1",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v2" AS TEXT) COLLATE "C", 0), 0) AS "h2",
  COALESCE(HASHTEXTEXTENDED(CAST("p"."v3" AS TEXT) COLLATE "C", 0), 0) AS "h3"
FROM "dinsync_state"."plan_people_to_crm" AS "p"
JOIN (
  SELECT
    "a"."_key",
    MAX(CASE WHEN "a"."_again" THEN 1 ELSE 0 END) AS "_again"
  FROM "dinsync_state"."ack_people_to_crm" AS "a"
  GROUP BY
    "a"."_key"
) AS "a"
  ON "a"."_key" = "p"."_key"
WHERE
  "p"."_op" IN ('added', 'changed')
