CREATE TABLE "dinsync_scratch"."acked_people_to_crm" AS
SELECT
  "p"."rowid" AS "_rn",
  "p"."_prior" AS "_replace",
  CASE WHEN "p"."_prior" THEN "p"."_kh" END AS "_kh",
  CASE WHEN "p"."_prior" THEN "p"."_key" END AS "_key"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
JOIN (
  SELECT
    "a"."_rn",
    HASH(CAST("a"."_key" AS TEXT)) AS "_kh"
  FROM "dinsync_scratch"."ack_people_to_crm" AS "a"
  WHERE
    NOT "a"."_rn" IS NULL
) AS "a"
  ON "p"."rowid" = "a"."_rn" AND "p"."_kh" = "a"."_kh"
WHERE
  "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
  AND "p"."_op" IN ('added', 'changed')
