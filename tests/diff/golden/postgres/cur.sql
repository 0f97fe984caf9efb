CREATE TABLE "dinsync_state"."cur_people_to_crm" AS
SELECT
  NULLIF(
    LOWER(
      TRIM(BOTH CHR(  9) || CHR(  10) || CHR(  11) || CHR(  12) || CHR(  13) || '                  　' FROM CAST("m"."email" AS TEXT) COLLATE "default")
    ),
    ''
  ) AS "_key",
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
    THEN COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT) COLLATE "C", 0), 0)
  END AS "_rkh",
  HASH_RECORD_EXTENDED(ROW("m"."email", "m"."first name", "m"."score ""x""", "m"."id"), 0) AS "_fp",
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
    THEN COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT) COLLATE "C", 0), 0)
  END IN (
    SELECT
      "c"."_rkh"
    FROM "dinsync_state"."cand_people_to_crm" AS "c"
    WHERE
      "c"."_in_seg"
  )
