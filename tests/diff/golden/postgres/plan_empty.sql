CREATE TABLE "dinsync_state"."plan_people_to_crm" AS
SELECT
  CAST(NULL AS VARCHAR) AS "_key",
  CAST(NULL AS VARCHAR) AS "_op",
  "m"."email" AS "v0",
  "m"."first name" AS "v1",
  "m"."score ""x""" AS "v2",
  "m"."id" AS "v3",
  CAST(NULL AS BOOLEAN) AS "x0",
  CAST(NULL AS BOOLEAN) AS "x1",
  CAST(NULL AS BOOLEAN) AS "x2",
  CAST(NULL AS BOOLEAN) AS "x3",
  CAST(NULL AS BIGINT) AS "_n",
  CAST(NULL AS BIGINT) AS "_kh",
  CAST(NULL AS BIGINT) AS "_rkh",
  CAST(NULL AS BIGINT) AS "_fp",
  CAST(NULL AS BOOLEAN) AS "_prior"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
WHERE
  FALSE
