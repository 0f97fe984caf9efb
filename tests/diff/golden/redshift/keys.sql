CREATE TABLE "dinsync_state"."keys_people_to_crm" AS
SELECT
  CASE
    WHEN NOT "k"."_key" IS NULL
    THEN CASE
      WHEN "k"."_key" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("k"."_key" AS VARCHAR(65535)))
    END
  END AS "_kh",
  "k"."_fp",
  "k"."_rkh"
FROM (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR(65535)))), '') AS "_key",
    FNV_HASH(
      CASE
        WHEN "m"."id" IS NULL
        THEN 0
        ELSE FNV_HASH(CAST("m"."id" AS VARCHAR(65535)))
      END,
      FNV_HASH(
        CASE
          WHEN "m"."score ""x""" IS NULL
          THEN 0
          ELSE FNV_HASH(CAST("m"."score ""x""" AS VARCHAR(65535)))
        END,
        FNV_HASH(
          CASE
            WHEN "m"."first name" IS NULL
            THEN 0
            ELSE FNV_HASH(CAST("m"."first name" AS VARCHAR(65535)))
          END,
          FNV_HASH(
            CASE
              WHEN "m"."email" IS NULL
              THEN 0
              ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
            END
          )
        )
      )
    ) AS "_fp",
    CASE
      WHEN "m"."email" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
    END AS "_rkh"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
) AS "k"
