CREATE TABLE "dinsync_state"."keys_people_to_crm" AS
SELECT
  CASE
    WHEN NOT "k"."_key" IS NULL
    THEN COALESCE(HASHTEXTEXTENDED(CAST("k"."_key" AS TEXT), 0), 0)
  END AS "_kh",
  "k"."_fp",
  "k"."_rkh"
FROM (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR))), '') AS "_key",
    HASH_RECORD_EXTENDED(ROW("m"."email", "m"."first name", "m"."score ""x""", "m"."id"), 0) AS "_fp",
    COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT), 0), 0) AS "_rkh"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
) AS "k"
