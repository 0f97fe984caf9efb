CREATE TABLE "dinsync_state"."buckets_people_to_crm" AS
WITH "seg" AS (
  SELECT
    COALESCE("r"."_rkh" % 16384, 16384) AS "_b",
    COUNT(*) AS "_n",
    SUM(
      HASHTEXTEXTENDED((
        CAST("r"."_rkh" AS TEXT) || ',' || CAST("r"."_fp" AS TEXT)
      ), 0)
    ) AS "_d"
  FROM (
    SELECT
      CASE
        WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
        THEN COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT) COLLATE "C", 0), 0)
      END AS "_rkh",
      HASH_RECORD_EXTENDED(ROW("m"."email", "m"."first name", "m"."score ""x""", "m"."id"), 0) AS "_fp"
    FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
  ) AS "r"
  GROUP BY
    COALESCE("r"."_rkh" % 16384, 16384)
), "snap" AS (
  SELECT
    COALESCE("s"."_rkh" % 16384, 16385) AS "_b",
    COUNT(*) AS "_n",
    COUNT("s"."_fp") AS "_n_fp",
    SUM(
      HASHTEXTEXTENDED((
        CAST("s"."_rkh" AS TEXT) || ',' || CAST("s"."_fp" AS TEXT)
      ), 0)
    ) AS "_d"
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    NOT "s"."_synced_at" IS NULL
  GROUP BY
    COALESCE("s"."_rkh" % 16384, 16385)
)
SELECT
  COALESCE("a"."_b", "b"."_b") AS "_b",
  COALESCE("a"."_n", 0) AS "_seg_n",
  COALESCE("b"."_n", 0) AS "_snap_n",
  COALESCE("a"."_b", "b"."_b") <> 16384
  AND (
    "a"."_b" IS NULL
    OR "b"."_b" IS NULL
    OR "a"."_n" <> "b"."_n"
    OR "b"."_n_fp" <> "b"."_n"
    OR "a"."_d" <> "b"."_d"
  ) AS "_dirty"
FROM "seg" AS "a"
FULL OUTER JOIN "snap" AS "b"
  ON "a"."_b" = "b"."_b"
