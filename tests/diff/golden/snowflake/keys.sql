CREATE TABLE "dinsync_state"."keys_people_to_crm" AS
SELECT
  CASE
    WHEN NOT "k"."_key" IS NULL
    THEN COALESCE(HASH(CAST("k"."_key" AS VARCHAR)), 0)
  END AS "_kh",
  "k"."_fp",
  "k"."_rkh"
FROM (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR))), '') AS "_key",
    HASH(
      COALESCE(HASH(CAST("m"."email" AS VARCHAR)), 0),
      COALESCE(HASH(CAST("m"."first name" AS VARCHAR)), 0),
      COALESCE(HASH(CAST("m"."score ""x""" AS VARCHAR)), 0),
      COALESCE(HASH(CAST("m"."id" AS VARCHAR)), 0)
    ) AS "_fp",
    COALESCE(HASH(CAST("m"."email" AS VARCHAR)), 0) AS "_rkh"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
) AS "k"
