CREATE TABLE "dinsync_state"."seg_people_to_crm" AS
SELECT
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
    THEN COALESCE(HASH(CAST("m"."email" AS VARCHAR)), 0)
  END AS "_rkh",
  HASH(
    COALESCE(HASH(CAST("m"."email" AS VARCHAR)), 0),
    COALESCE(HASH(CAST("m"."first name" AS VARCHAR)), 0),
    COALESCE(HASH(CAST("m"."score ""x""" AS VARCHAR)), 0),
    COALESCE(HASH(CAST("m"."id" AS VARCHAR)), 0)
  ) AS "_fp"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
