CREATE TABLE "dinsync_scratch_people_to_crm"."main"."seg_people_to_crm" AS
SELECT
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS TEXT), '') IS NULL
    THEN HASH(CAST("m"."email" AS TEXT) COLLATE C)
  END AS "_rkh",
  HASH(
    "m"."email",
    "m"."first name",
    "m"."score ""x""",
    "m"."id",
    CONCAT_WS(
      ',',
      TYPEOF("m"."email"),
      TYPEOF("m"."first name"),
      TYPEOF("m"."score ""x"""),
      TYPEOF("m"."id")
    )
  ) AS "_fp"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
