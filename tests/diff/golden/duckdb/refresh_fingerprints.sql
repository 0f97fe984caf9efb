UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_fp" = "u"."_fp"
FROM (
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
    HASH(CAST("m"."email" AS TEXT)) AS "h0",
    HASH(CAST("m"."first name" AS TEXT)) AS "h1",
    HASH(CAST("m"."score ""x""" AS TEXT)) AS "h2",
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
