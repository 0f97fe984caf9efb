CREATE TABLE "dinsync_scratch_people_to_crm"."main"."buckets_people_to_crm" AS
WITH "seg" AS (
  SELECT
    COALESCE("r"."_rkh" % 16384, 16384) AS "_b",
    COUNT(*) AS "_n",
    BIT_XOR(HASH(HASH("r"."_rkh", "r"."_fp"))) AS "_d"
  FROM "dinsync_scratch_people_to_crm"."main"."seg_people_to_crm" AS "r"
  GROUP BY
    COALESCE("r"."_rkh" % 16384, 16384)
), "snap" AS (
  SELECT
    COALESCE("s"."_rkh" % 16384, 16385) AS "_b",
    COUNT(*) AS "_n",
    COUNT(COALESCE("s"."_pfp", "s"."_fp")) AS "_n_fp",
    BIT_XOR(HASH(HASH("s"."_rkh", COALESCE("s"."_pfp", "s"."_fp")))) AS "_d"
  FROM "dinsync_state"."snap_people_to_crm" AS "s"
  WHERE
    TRUE
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
