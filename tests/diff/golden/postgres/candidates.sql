CREATE TABLE "dinsync_state"."cand_people_to_crm" AS
WITH "seg_coarse" AS (
  SELECT
    "a"."_kh" % 1024 AS "_b",
    COUNT(*) AS "_n",
    SUM(HASHINT8EXTENDED("a"."_fp", "a"."_kh")) AS "_d"
  FROM "dinsync_state"."keys_people_to_crm" AS "a"
  WHERE
    NOT "a"."_kh" IS NULL
  GROUP BY
    "a"."_kh" % 1024
), "snap_coarse" AS (
  SELECT
    "b"."_kh" % 1024 AS "_b",
    COUNT(*) AS "_n",
    COUNT("b"."_fp") AS "_n_fp",
    SUM(HASHINT8EXTENDED("b"."_fp", "b"."_kh")) AS "_d"
  FROM "dinsync_state"."snap_people_to_crm" AS "b"
  WHERE
    TRUE
  GROUP BY
    "b"."_kh" % 1024
), "dirty_coarse" AS (
  SELECT
    COALESCE("a"."_b", "b"."_b") AS "_b"
  FROM "seg_coarse" AS "a"
  FULL OUTER JOIN "snap_coarse" AS "b"
    ON "a"."_b" = "b"."_b"
  WHERE
    "a"."_b" IS NULL
    OR "b"."_b" IS NULL
    OR "a"."_n" <> "b"."_n"
    OR "b"."_n_fp" <> "b"."_n"
    OR "a"."_d" <> "b"."_d"
), "seg_fine" AS (
  SELECT
    "a"."_kh" % 1048576 AS "_b",
    COUNT(*) AS "_n",
    SUM(HASHINT8EXTENDED("a"."_fp", "a"."_kh")) AS "_d"
  FROM "dinsync_state"."keys_people_to_crm" AS "a"
  WHERE
    "a"."_kh" % 1024 IN (
      SELECT
        "d"."_b"
      FROM "dirty_coarse" AS "d"
    )
  GROUP BY
    "a"."_kh" % 1048576
), "snap_fine" AS (
  SELECT
    "b"."_kh" % 1048576 AS "_b",
    COUNT(*) AS "_n",
    COUNT("b"."_fp") AS "_n_fp",
    SUM(HASHINT8EXTENDED("b"."_fp", "b"."_kh")) AS "_d"
  FROM "dinsync_state"."snap_people_to_crm" AS "b"
  WHERE
    TRUE
    AND "b"."_kh" % 1024 IN (
      SELECT
        "d"."_b"
      FROM "dirty_coarse" AS "d"
    )
  GROUP BY
    "b"."_kh" % 1048576
), "dirty_fine" AS (
  SELECT
    COALESCE("a"."_b", "b"."_b") AS "_b"
  FROM "seg_fine" AS "a"
  FULL OUTER JOIN "snap_fine" AS "b"
    ON "a"."_b" = "b"."_b"
  WHERE
    "a"."_b" IS NULL
    OR "b"."_b" IS NULL
    OR "a"."_n" <> "b"."_n"
    OR "b"."_n_fp" <> "b"."_n"
    OR "a"."_d" <> "b"."_d"
), "seg_keys" AS (
  SELECT
    "a"."_kh",
    COUNT(*) AS "_n",
    MIN("a"."_fp") AS "_fp",
    MIN("a"."_rkh") AS "_rkh"
  FROM "dinsync_state"."keys_people_to_crm" AS "a"
  WHERE
    "a"."_kh" % 1048576 IN (
      SELECT
        "d"."_b"
      FROM "dirty_fine" AS "d"
    )
  GROUP BY
    "a"."_kh"
), "snap_keys" AS (
  SELECT
    "b"."_kh",
    "b"."_fp"
  FROM "dinsync_state"."snap_people_to_crm" AS "b"
  WHERE
    TRUE
    AND "b"."_kh" % 1048576 IN (
      SELECT
        "d"."_b"
      FROM "dirty_fine" AS "d"
    )
), "changed_keys" AS (
  SELECT
    COALESCE("a"."_kh", "b"."_kh") AS "_kh",
    "a"."_n",
    "a"."_rkh"
  FROM "seg_keys" AS "a"
  FULL OUTER JOIN "snap_keys" AS "b"
    ON "a"."_kh" = "b"."_kh"
  WHERE
    "a"."_kh" IS NULL
    OR "b"."_kh" IS NULL
    OR "a"."_n" > 1
    OR "b"."_fp" IS NULL
    OR "a"."_fp" <> "b"."_fp"
)
SELECT
  "c"."_kh",
  "c"."_rkh"
FROM "changed_keys" AS "c"
WHERE
  "c"."_n" IS NULL OR "c"."_n" = 1
UNION ALL
SELECT
  "c"."_kh",
  "a"."_rkh"
FROM "changed_keys" AS "c"
JOIN "dinsync_state"."keys_people_to_crm" AS "a"
  ON "a"."_kh" = "c"."_kh"
WHERE
  "c"."_n" > 1
