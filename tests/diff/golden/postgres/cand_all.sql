CREATE TABLE "dinsync_state"."cand_people_to_crm" AS
WITH "seg" AS (
  SELECT
    "r"."_rkh",
    "r"."_fp"
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
  WHERE
    NOT "r"."_rkh" IS NULL
), "snap" AS (
  SELECT
    "s"."_rkh",
    "s"."_kh",
    COALESCE("s"."_pfp", "s"."_fp") AS "_efp",
    1 AS "_here"
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    TRUE
)
SELECT
  COALESCE("a"."_rkh", "b"."_rkh") AS "_rkh",
  "b"."_kh",
  NOT "a"."_rkh" IS NULL AS "_in_seg",
  NOT "b"."_here" IS NULL AS "_in_snap",
  COALESCE("a"."_rkh" % 16384, "b"."_rkh" % 16384, 16385) AS "_b"
FROM "seg" AS "a"
FULL OUTER JOIN "snap" AS "b"
  ON "a"."_rkh" = "b"."_rkh"
WHERE
  "a"."_rkh" IS NULL
  OR "b"."_here" IS NULL
  OR "b"."_efp" IS NULL
  OR "a"."_fp" <> "b"."_efp"
