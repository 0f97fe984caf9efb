CREATE TABLE "dinsync_scratch_people_to_crm"."main"."cur_people_to_crm" AS
SELECT
  NULLIF(
    LOWER(
      CASE
        WHEN ASCII(CAST("m"."email" AS TEXT) COLLATE C) > 32
        AND ASCII(RIGHT(CAST("m"."email" AS TEXT) COLLATE C, 1)) > 32
        AND STRLEN(CAST("m"."email" AS TEXT) COLLATE C) = LENGTH(CAST("m"."email" AS TEXT) COLLATE C)
        THEN CAST("m"."email" AS TEXT) COLLATE C
        ELSE REGEXP_REPLACE(
          CAST("m"."email" AS TEXT) COLLATE C,
          '^[\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+|[\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+$',
          '',
          'g'
        )
      END
    ),
    ''
  ) AS "_key",
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS TEXT), '') IS NULL
    THEN HASH(CAST("m"."email" AS TEXT) COLLATE C)
  END AS "_rkh",
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
  ) AS "_fp",
  "m"."email" AS "v0",
  "m"."first name" AS "v1",
  "m"."score ""x""" AS "v2",
  "m"."id" AS "v3"
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
WHERE
  CASE
    WHEN NOT NULLIF(CAST("m"."email" AS TEXT), '') IS NULL
    THEN HASH(CAST("m"."email" AS TEXT) COLLATE C)
  END IN (
    SELECT
      "c"."_rkh"
    FROM "dinsync_scratch_people_to_crm"."main"."cand_people_to_crm" AS "c"
    WHERE
      "c"."_in_seg"
  )
