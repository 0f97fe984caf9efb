UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_fp" = "u"."_fp"
FROM (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR(65535)))), '') AS "_key",
    CASE
      WHEN "m"."email" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
    END AS "h0",
    CASE
      WHEN "m"."first name" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."first name" AS VARCHAR(65535)))
    END AS "h1",
    CASE
      WHEN "m"."score ""x""" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."score ""x""" AS VARCHAR(65535)))
    END AS "h2",
    CASE
      WHEN "m"."id" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."id" AS VARCHAR(65535)))
    END AS "h3",
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
    ) AS "_fp"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
  WHERE
    CASE
      WHEN "m"."email" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
    END IN (
      SELECT
        "c"."_rkh"
      FROM "dinsync_state"."cand_people_to_crm" AS "c"
    )
) AS "u"
WHERE
  "s"."_key" = "u"."_key"
  AND (
    "s"."_fp" IS NULL OR "s"."_fp" <> "u"."_fp"
  )
  AND "s"."f_a88b7dcd1a9e3e17" = "u"."h0"
  AND "s"."f_b6ea992aab466831" = "u"."h1"
  AND "s"."f_b205e07e594ce1db" = "u"."h2"
  AND "s"."f_a720b844fa90091f" = "u"."h3"
  AND NOT "s"."_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_state"."plan_people_to_crm" AS "p"
  )
