UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_fp" = "u"."_fp"
FROM (
  SELECT
    NULLIF(LOWER(TRIM(CAST("m"."email" AS VARCHAR))), '') AS "_key",
    COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT), 0), 0) AS "h0",
    COALESCE(HASHTEXTEXTENDED(CAST("m"."first name" AS TEXT), 0), 0) AS "h1",
    COALESCE(HASHTEXTEXTENDED(CAST("m"."score ""x""" AS TEXT), 0), 0) AS "h2",
    COALESCE(HASHTEXTEXTENDED(CAST("m"."id" AS TEXT), 0), 0) AS "h3",
    HASH_RECORD_EXTENDED(ROW("m"."email", "m"."first name", "m"."score ""x""", "m"."id"), 0) AS "_fp"
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
  WHERE
    COALESCE(HASHTEXTEXTENDED(CAST("m"."email" AS TEXT), 0), 0) IN (
      SELECT
        "c"."_rkh"
      FROM "dinsync_state"."cand_people_to_crm" AS "c"
    )
) AS "u"
WHERE
  "s"."_key" = "u"."_key"
  AND (
    "s"."_fp" IS NULL OR "s"."_fp" <> "u"."_fp"
  )
  AND "s"."f_a88b7dcd1a9e3e17" = "u"."h0"
  AND "s"."f_b6ea992aab466831" = "u"."h1"
  AND "s"."f_b205e07e594ce1db" = "u"."h2"
  AND "s"."f_a720b844fa90091f" = "u"."h3"
  AND NOT "s"."_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_state"."plan_people_to_crm" AS "p"
  )
