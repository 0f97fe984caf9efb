CREATE TABLE "dinsync_state"."seg_people_to_crm" AS
SELECT
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
    THEN COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT), 0), 0)
  END AS "_rkh",
  HASHTEXTEXTENDED(
    (
      CAST(COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT), 0), 0) AS TEXT) || ',' || CAST(COALESCE(HASHTEXTEXTENDED(CAST("m"."first name" AS TEXT), 0), 0) AS TEXT) || ',' || CAST(COALESCE(HASHTEXTEXTENDED(CAST("m"."score ""x""" AS TEXT), 0), 0) AS TEXT) || ',' || CAST(COALESCE(HASHTEXTEXTENDED(CAST("m"."id" AS TEXT), 0), 0) AS TEXT)
    ),
    0
  ) AS "_fp"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
