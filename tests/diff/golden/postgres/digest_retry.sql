WITH "seg" AS (
  SELECT
    COUNT(*) AS "_n",
    COUNT("r"."_rkh") AS "_keyed",
    SUM(
      CASE
        WHEN NOT "r"."_rkh" IS NULL
        THEN HASHTEXTEXTENDED((
          CAST("r"."_rkh" AS TEXT) || ',' || CAST("r"."_fp" AS TEXT)
        ), 0)
      END
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
), "snap" AS (
  SELECT
    COUNT(*) AS "_n",
    COUNT("s"."_rkh") AS "_n_rkh",
    COUNT("s"."_fp") AS "_n_fp",
    SUM(
      CASE
        WHEN NOT "s"."_rkh" IS NULL
        THEN HASHTEXTEXTENDED((
          CAST("s"."_rkh" AS TEXT) || ',' || CAST("s"."_fp" AS TEXT)
        ), 0)
      END
    ) AS "_d"
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    NOT "s"."_synced_at" IS NULL
), "waiting" AS (
  SELECT
    COUNT(*) AS "_n"
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    "s"."_synced_at" IS NULL
)
SELECT
  "a"."_n" AS "segment_rows",
  "a"."_n" - "a"."_keyed" AS "null_keys",
  "a"."_keyed" AS "keyed_rows",
  "b"."_n" AS "snapshot_rows",
  CASE
    WHEN "a"."_keyed" <> "b"."_n" OR "b"."_n_rkh" <> "b"."_n" OR "b"."_n_fp" <> "b"."_n"
    THEN 1
    WHEN "w"."_n" > 0
    THEN 1
    WHEN "a"."_keyed" = 0
    THEN 0
    WHEN "a"."_d" <> "b"."_d"
    THEN 1
    ELSE 0
  END AS "dirty"
FROM "seg" AS "a"
CROSS JOIN "snap" AS "b"
CROSS JOIN "waiting" AS "w"
