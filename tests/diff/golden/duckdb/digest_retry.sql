WITH "seg" AS (
  SELECT
    COUNT(*) AS "_n",
    COUNT("r"."_rkh") AS "_keyed",
    BIT_XOR(CASE WHEN NOT "r"."_rkh" IS NULL THEN HASH(HASH("r"."_rkh", "r"."_fp")) END) AS "_d"
  FROM "dinsync_scratch_people_to_crm"."main"."seg_people_to_crm" AS "r"
), "snap" AS (
  SELECT
    COUNT(*) AS "_n",
    COUNT("s"."_rkh") AS "_n_rkh",
    COUNT("s"."_fp") AS "_n_fp",
    BIT_XOR(CASE WHEN NOT "s"."_rkh" IS NULL THEN HASH(HASH("s"."_rkh", "s"."_fp")) END) AS "_d"
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
