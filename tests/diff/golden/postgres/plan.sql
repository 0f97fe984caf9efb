CREATE TABLE "dinsync_state"."plan_people_to_crm" AS
WITH "counts" AS (
  SELECT
    "c"."_key",
    COUNT(*) AS "_n"
  FROM "dinsync_state"."cur_people_to_crm" AS "c"
  WHERE
    NOT "c"."_key" IS NULL
  GROUP BY
    "c"."_key"
), "keyed" AS (
  SELECT
    "n"."_key",
    "n"."_n" + CASE WHEN NOT "p"."_rkh" IS NULL AND TRUE AND "r"."_rkh" IS NULL THEN 1 ELSE 0 END AS "_n"
  FROM "counts" AS "n"
  LEFT JOIN "dinsync_state"."prior_people_to_crm" AS "p"
    ON "p"."_key" = "n"."_key"
  LEFT JOIN (
    SELECT DISTINCT
      "c"."_rkh"
    FROM "dinsync_state"."cand_people_to_crm" AS "c"
    WHERE
      NOT "c"."_rkh" IS NULL
  ) AS "r"
    ON "r"."_rkh" = "p"."_rkh"
), "hashed" AS (
  SELECT
    "c".*,
    COALESCE(HASHTEXTEXTENDED(CAST("c"."v0" AS TEXT) COLLATE "C", 0), 0) AS "h0",
    COALESCE(HASHTEXTEXTENDED(CAST("c"."v1" AS TEXT) COLLATE "C", 0), 0) AS "h1",
    COALESCE(HASHTEXTEXTENDED(CAST("c"."v2" AS TEXT) COLLATE "C", 0), 0) AS "h2",
    COALESCE(HASHTEXTEXTENDED(CAST("c"."v3" AS TEXT) COLLATE "C", 0), 0) AS "h3"
  FROM "dinsync_state"."cur_people_to_crm" AS "c"
), "rows" AS (
  SELECT
    "c".*,
    NOT "p"."_key" IS NULL AS "_prior",
    NOT "p"."_synced_at" IS NULL AS "_delivered",
    "p"."_rkh" AS "_prior_rkh",
    COALESCE("p"."_pfp", "p"."_fp") AS "_efp",
    (
      "p"."_synced_at" IS NULL
      OR "p"."f_a88b7dcd1a9e3e17" IS NULL
      OR "p"."f_a88b7dcd1a9e3e17" <> "c"."h0"
    ) AS "x0",
    (
      "p"."_synced_at" IS NULL
      OR "p"."f_b6ea992aab466831" IS NULL
      OR "p"."f_b6ea992aab466831" <> "c"."h1"
    ) AS "x1",
    (
      "p"."_synced_at" IS NULL
      OR "p"."f_b205e07e594ce1db" IS NULL
      OR "p"."f_b205e07e594ce1db" <> "c"."h2"
    ) AS "x2",
    (
      "p"."_synced_at" IS NULL
      OR "p"."f_a720b844fa90091f" IS NULL
      OR "p"."f_a720b844fa90091f" <> "c"."h3"
    ) AS "x3"
  FROM "hashed" AS "c"
  JOIN "keyed" AS "k"
    ON "k"."_key" = "c"."_key" AND "k"."_n" = 1
  LEFT JOIN "dinsync_state"."prior_people_to_crm" AS "p"
    ON "p"."_key" = "c"."_key"
), "ops" AS (
  SELECT
    "r".*,
    CASE
      WHEN NOT "r"."_efp" IS NULL AND "r"."_fp" = "r"."_efp"
      THEN 'rekey'
      WHEN NOT "r"."_delivered"
      THEN 'added'
      WHEN "r"."x0" OR "r"."x1" OR "r"."x2" OR "r"."x3"
      THEN 'changed'
      ELSE 'refresh'
    END AS "_op"
  FROM "rows" AS "r"
  WHERE
    "r"."_efp" IS NULL
    OR "r"."_fp" <> "r"."_efp"
    OR "r"."_prior_rkh" IS NULL
    OR "r"."_rkh" <> "r"."_prior_rkh"
)
SELECT
  "o"."_key",
  "o"."_op",
  CASE WHEN "o"."_op" IN ('added', 'changed') THEN "o"."v0" END AS "v0",
  CASE WHEN "o"."_op" IN ('added', 'changed') THEN "o"."v1" END AS "v1",
  CASE WHEN "o"."_op" IN ('added', 'changed') THEN "o"."v2" END AS "v2",
  CASE WHEN "o"."_op" IN ('added', 'changed') THEN "o"."v3" END AS "v3",
  CASE
    WHEN "o"."_op" IN ('added', 'changed')
    THEN "o"."_op" = 'added' OR "o"."x0"
  END AS "x0",
  CASE
    WHEN "o"."_op" IN ('added', 'changed')
    THEN "o"."_op" = 'added' OR "o"."x1"
  END AS "x1",
  CASE
    WHEN "o"."_op" IN ('added', 'changed')
    THEN "o"."_op" = 'added' OR "o"."x2"
  END AS "x2",
  CASE
    WHEN "o"."_op" IN ('added', 'changed')
    THEN "o"."_op" = 'added' OR "o"."x3"
  END AS "x3",
  CAST(1 AS BIGINT) AS "_n",
  COALESCE(HASHTEXTEXTENDED(CAST("o"."_key" AS TEXT) COLLATE "C", 0), 0) AS "_kh",
  "o"."_rkh",
  "o"."_fp",
  "o"."_prior"
FROM "ops" AS "o"
UNION ALL
SELECT
  "k"."_key",
  'duplicate',
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  "k"."_n",
  COALESCE(HASHTEXTEXTENDED(CAST("k"."_key" AS TEXT) COLLATE "C", 0), 0),
  NULL,
  NULL,
  NULL
FROM "keyed" AS "k"
WHERE
  "k"."_n" > 1
UNION ALL
SELECT
  NULL,
  'skipped',
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  COUNT(*),
  NULL,
  NULL,
  NULL,
  NULL
FROM "dinsync_state"."cur_people_to_crm" AS "c"
WHERE
  "c"."_key" IS NULL
HAVING
  COUNT(*) > 0
UNION ALL
SELECT
  "p"."_key",
  CASE WHEN NOT "p"."_synced_at" IS NULL THEN 'removed' ELSE 'forget' END,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  NULL,
  CAST(0 AS BIGINT),
  "p"."_kh",
  "p"."_rkh",
  NULL,
  TRUE
FROM "dinsync_state"."prior_people_to_crm" AS "p"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "counts" AS "n"
    WHERE
      "n"."_key" = "p"."_key"
  )
  AND (
    NOT "p"."_synced_at" IS NULL
    OR "p"."_rkh" IS NULL
    OR "p"."_rkh" IN (
      SELECT
        "c"."_rkh"
      FROM "dinsync_state"."cand_people_to_crm" AS "c"
      WHERE
        "c"."_in_snap" AND NOT "c"."_in_seg"
    )
  )
