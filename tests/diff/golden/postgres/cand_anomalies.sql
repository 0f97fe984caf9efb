INSERT INTO "dinsync_state"."cand_people_to_crm" (
  "_rkh",
  "_in_seg",
  "_in_snap",
  "_b"
)
SELECT
  "r"."_rkh",
  TRUE,
  FALSE,
  "r"."_rkh" % 16384
FROM (
  SELECT
    CASE
      WHEN NOT NULLIF(CAST("m"."email" AS VARCHAR), '') IS NULL
      THEN COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT) COLLATE "C", 0), 0)
    END AS "_rkh"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
) AS "r"
WHERE
  "r"."_rkh" % 16384 IN (
    SELECT
      "b"."_b"
    FROM "dinsync_state"."buckets_people_to_crm" AS "b"
    LEFT JOIN (
      SELECT
        "c"."_b",
        COUNT(CASE WHEN "c"."_in_seg" AND NOT "c"."_in_snap" THEN 1 END) AS "_new",
        COUNT(CASE WHEN "c"."_in_snap" AND NOT "c"."_in_seg" THEN 1 END) AS "_gone"
      FROM "dinsync_state"."cand_people_to_crm" AS "c"
      GROUP BY
        "c"."_b"
    ) AS "c"
      ON "c"."_b" = "b"."_b"
    WHERE
      "b"."_dirty"
      AND "b"."_b" < 16384
      AND "b"."_seg_n" - COALESCE("c"."_new", 0) > "b"."_snap_n" - COALESCE("c"."_gone", 0)
  )
GROUP BY
  "r"."_rkh"
HAVING
  COUNT(*) > 1
