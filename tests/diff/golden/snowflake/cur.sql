CREATE TABLE "dinsync_state"."cur_people_to_crm" AS
SELECT
  NULLIF(
    LOWER(
      TRIM(
        CAST("m"."email" AS VARCHAR),
        CHR(  9) || CHR(  10) || CHR(  11) || CHR(  12) || CHR(  13) || '                  　'
      )
    ),
    ''
  ) AS "_key",
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
    THEN COALESCE(HASH(CAST("m"."email" AS VARCHAR)) % 9223372036854775807, 0)
  END AS "_rkh",
  HASH(
    COALESCE(HASH(CAST("m"."email" AS VARCHAR)) % 9223372036854775807, 0),
    COALESCE(HASH(CAST("m"."first name" AS VARCHAR)) % 9223372036854775807, 0),
    COALESCE(HASH(CAST("m"."score ""x""" AS VARCHAR)) % 9223372036854775807, 0),
    COALESCE(HASH(CAST("m"."id" AS VARCHAR)) % 9223372036854775807, 0)
  ) % 9223372036854775807 AS "_fp",
  "m"."email" AS "v0",
  "m"."first name" AS "v1",
  "m"."score ""x""" AS "v2",
  "m"."id" AS "v3"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
WHERE
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
    THEN COALESCE(HASH(CAST("m"."email" AS VARCHAR)) % 9223372036854775807, 0)
  END IN (
    SELECT
      "c"."_rkh"
    FROM "dinsync_state"."cand_people_to_crm" AS "c"
    WHERE
      "c"."_in_seg"
  )
