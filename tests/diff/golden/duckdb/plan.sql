CREATE TABLE "dinsync_state"."plan_people_to_crm" AS
WITH "cur" AS (
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
    "m"."email" AS "v0",
    HASH(CAST("m"."email" AS TEXT)) AS "h0",
    "m"."first name" AS "v1",
    HASH(CAST("m"."first name" AS TEXT)) AS "h1",
    "m"."score ""x""" AS "v2",
    HASH(CAST("m"."score ""x""" AS TEXT)) AS "h2",
    "m"."id" AS "v3",
    HASH(CAST("m"."id" AS TEXT)) AS "h3",
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
  WHERE
    HASH(CAST("m"."email" AS TEXT)) IN (
      SELECT
        "c"."_rkh"
      FROM "temp"."main"."cand_people_to_crm" AS "c"
    )
), "counts" AS MATERIALIZED (
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
    COUNT(*) AS "_n",
    COUNT(
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
      )
    ) AS "_keyed"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
  WHERE
    HASH(CAST("m"."email" AS TEXT)) IN (
      SELECT
        "c"."_rkh"
      FROM "temp"."main"."cand_people_to_crm" AS "c"
    )
  GROUP BY
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
    )
), "prior" AS (
  SELECT
    "s".*
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    TRUE
    AND "s"."_kh" IN (
      SELECT
        "c"."_kh"
      FROM "temp"."main"."cand_people_to_crm" AS "c"
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
  HASH(CAST("ch"."_key" AS TEXT)) AS "_kh",
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
    FROM "temp"."main"."cand_people_to_crm" AS "c"
  )
  AND NOT EXISTS(
    SELECT
      1
    FROM "counts" AS "n"
    WHERE
      "n"."_key" = "s"."_key"
  )
