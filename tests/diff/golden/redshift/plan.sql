CREATE TABLE "dinsync_state"."plan_people_to_crm" AS
WITH "cur" AS (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR(65535)))), '') AS "_key",
    "m"."email" AS "v0",
    CASE
      WHEN "m"."email" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."email" AS VARCHAR(65535)))
    END AS "h0",
    "m"."first name" AS "v1",
    CASE
      WHEN "m"."first name" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."first name" AS VARCHAR(65535)))
    END AS "h1",
    "m"."score ""x""" AS "v2",
    CASE
      WHEN "m"."score ""x""" IS NULL
      THEN 0
      ELSE FNV_HASH(CAST("m"."score ""x""" AS VARCHAR(65535)))
    END AS "h2",
    "m"."id" AS "v3",
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
), "counts" AS (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR(65535)))), '') AS "_key",
    COUNT(*) AS "_n",
    COUNT(NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR(65535)))), '')) AS "_keyed"
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
  GROUP BY
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR(65535)))), '')
), "prior" AS (
  SELECT
    "s".*
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    TRUE
    AND "s"."_kh" IN (
      SELECT
        "c"."_kh"
      FROM "dinsync_state"."cand_people_to_crm" AS "c"
    )
), "changes" AS (
  SELECT
    "c".*,
    "p"."_key" IS NULL AS "_new",
    (
      "p"."_key" IS NULL
      OR "p"."f_a88b7dcd1a9e3e17" IS NULL
      OR "p"."f_a88b7dcd1a9e3e17" <> "c"."h0"
    ) AS "x0",
    (
      "p"."_key" IS NULL
      OR "p"."f_b6ea992aab466831" IS NULL
      OR "p"."f_b6ea992aab466831" <> "c"."h1"
    ) AS "x1",
    (
      "p"."_key" IS NULL
      OR "p"."f_b205e07e594ce1db" IS NULL
      OR "p"."f_b205e07e594ce1db" <> "c"."h2"
    ) AS "x2",
    (
      "p"."_key" IS NULL
      OR "p"."f_a720b844fa90091f" IS NULL
      OR "p"."f_a720b844fa90091f" <> "c"."h3"
    ) AS "x3"
  FROM "cur" AS "c"
  LEFT JOIN "prior" AS "p"
    ON "p"."_key" = "c"."_key"
  WHERE
    NOT EXISTS(
      SELECT
        1
      FROM "counts" AS "n"
      WHERE
        "n"."_key" = "c"."_key" AND "n"."_n" > 1
    )
    AND NOT COALESCE("c"."_key", "p"."_key") IS NULL
)
SELECT
  "ch"."_key",
  CASE WHEN "ch"."_new" THEN 'added' ELSE 'changed' END AS "_op",
  "ch"."v0",
  "ch"."h0",
  "ch"."x0",
  "ch"."v1",
  "ch"."h1",
  "ch"."x1",
  "ch"."v2",
  "ch"."h2",
  "ch"."x2",
  "ch"."v3",
  "ch"."h3",
  "ch"."x3",
  CAST(1 AS BIGINT) AS "_n",
  CASE
    WHEN "ch"."_key" IS NULL
    THEN 0
    ELSE FNV_HASH(CAST("ch"."_key" AS VARCHAR(65535)))
  END AS "_kh",
  "ch"."_fp"
FROM "changes" AS "ch"
WHERE
  "ch"."_new" OR "ch"."x0" OR "ch"."x1" OR "ch"."x2" OR "ch"."x3"
UNION ALL
SELECT
  "n"."_key",
  'duplicate',
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  "n"."_n",
  NULL,
  NULL
FROM "counts" AS "n"
WHERE
  "n"."_n" > 1 AND "n"."_keyed" > 0
UNION ALL
SELECT
  "s"."_key",
  'removed',
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  CAST(0 AS BIGINT),
  "s"."_kh",
  NULL
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  TRUE
  AND "s"."_kh" IN (
    SELECT
      "c"."_kh"
    FROM "dinsync_state"."cand_people_to_crm" AS "c"
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM "counts" AS "n"
    WHERE
      "n"."_key" = "s"."_key"
  )
