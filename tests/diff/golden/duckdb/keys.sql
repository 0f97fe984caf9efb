CREATE TEMPORARY TABLE "temp"."main"."keys_people_to_crm" AS
SELECT
  CASE WHEN NOT "k"."_key" IS NULL THEN HASH(CAST("k"."_key" AS TEXT)) END AS "_kh",
  "k"."_fp",
  "k"."_rkh"
FROM (
  SELECT
    NULLIF(
      LOWER(
        CASE
          WHEN CAST("m"."email" AS TEXT) NOT LIKE ' %'
          AND CAST("m"."email" AS TEXT) NOT LIKE '% '
          AND STRLEN(CAST("m"."email" AS TEXT)) = LENGTH(CAST("m"."email" AS TEXT))
          THEN CAST("m"."email" AS TEXT)
          ELSE TRIM(CAST("m"."email" AS TEXT))
        END
      ),
      ''
    ) AS "_key",
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
    ) AS "_fp",
    HASH(CAST("m"."email" AS TEXT)) AS "_rkh"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
) AS "k"
