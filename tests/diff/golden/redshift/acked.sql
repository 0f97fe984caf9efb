CREATE TABLE "dinsync_state"."acked_people_to_crm" AS
SELECT
  "p"."_key",
  "p"."_kh",
  "p"."_fp",
  "p"."_rkh",
  "p"."_prior" OR "a"."_again" = 1 AS "_replace",
  CASE
    WHEN "p"."v0" IS NULL
    THEN 0
    ELSE FNV_HASH(CAST("p"."v0" AS VARCHAR(65535)))
  END AS "h0",
  CASE
    WHEN "p"."v1" IS NULL
    THEN 0
    ELSE FNV_HASH(CAST("p"."v1" AS VARCHAR(65535)))
  END AS "h1",
  CASE
    WHEN "p"."v2" IS NULL
    THEN 0
    ELSE FNV_HASH(CAST("p"."v2" AS VARCHAR(65535)))
  END AS "h2",
  CASE
    WHEN "p"."v3" IS NULL
    THEN 0
    ELSE FNV_HASH(CAST("p"."v3" AS VARCHAR(65535)))
  END AS "h3"
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
