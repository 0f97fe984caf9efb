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
      THEN CASE
        WHEN "j"."_key" IS NULL
        THEN 0
        ELSE FNV_HASH(CAST("j"."_key" AS VARCHAR(65535)))
      END
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
          TRIM(BOTH CHR(  9) || CHR(  10) || CHR(  11) || CHR(  12) || CHR(  13) || '                  　' FROM CAST("m"."email" AS VARCHAR(65535)))
        ),
        ''
      ) AS "_key",
      CASE
        WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR(65535)), '') IS NULL
        THEN CASE
          WHEN "m"."email" IS NULL
          THEN 0
          ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
        END
      END AS "_rkh",
      FNV_HASH(
        CAST(CASE
          WHEN "m"."email" IS NULL
          THEN 0
          ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
        END AS VARCHAR(65535)) || ',' || CAST(CASE
          WHEN "m"."first name" IS NULL
          THEN 0
          ELSE FNV_HASH(CAST("m"."first name" AS VARCHAR(65535)))
        END AS VARCHAR(65535)) || ',' || CAST(CASE
          WHEN "m"."score ""x""" IS NULL
          THEN 0
          ELSE FNV_HASH(CAST("m"."score ""x""" AS VARCHAR(65535)))
        END AS VARCHAR(65535)) || ',' || CAST(CASE
          WHEN "m"."id" IS NULL
          THEN 0
          ELSE FNV_HASH(CAST("m"."id" AS VARCHAR(65535)))
        END AS VARCHAR(65535))
      ) AS "_fp",
      "m"."email" AS "v0",
      "m"."first name" AS "v1",
      "m"."score ""x""" AS "v2",
      "m"."id" AS "v3"
    FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
  ) AS "j"
) AS "k"
