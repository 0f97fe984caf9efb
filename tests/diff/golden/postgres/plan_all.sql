CREATE TABLE "dinsync_state"."plan_people_to_crm" AS
SELECT
  "k"."_key",
  CASE WHEN "k"."_key" IS NULL THEN 'skipped' ELSE 'added' END AS "_op",
  "k"."v0",
  "k"."v1",
  "k"."v2",
  "k"."v3",
  TRUE AS "x0",
  TRUE AS "x1",
  TRUE AS "x2",
  TRUE AS "x3",
  CAST(1 AS BIGINT) AS "_n",
  "k"."_kh",
  "k"."_rkh",
  "k"."_fp",
  FALSE AS "_prior"
FROM (
  SELECT
    "j"."_key",
    CASE
      WHEN NOT "j"."_key" IS NULL
      THEN COALESCE(HASHTEXTEXTENDED(CAST("j"."_key" AS TEXT) COLLATE "C", 0), 0)
    END AS "_kh",
    "j"."_rkh",
    "j"."_fp",
    "j"."v0",
    "j"."v1",
    "j"."v2",
    "j"."v3"
  FROM (
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
  ) AS "j"
) AS "k"
