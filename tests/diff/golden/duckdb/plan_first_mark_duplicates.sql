INSERT INTO "dinsync_scratch"."plan_people_to_crm" (
  "_key",
  "_op",
  "_n",
  "_kh"
)
SELECT
  "d"."_key",
  'duplicate',
  COUNT(*),
  MIN("d"."_kh")
FROM (
  SELECT
    "k"."_key",
    HASH(CAST("k"."_key" AS TEXT)) AS "_kh"
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
      ) AS "_key"
    FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS "m"
  ) AS "k"
  WHERE
    NOT "k"."_key" IS NULL
) AS "d"
WHERE
  "d"."_kh" IN (
    SELECT
      "c"."_kh"
    FROM "dinsync_scratch"."plan_people_to_crm" AS "c"
    WHERE
      "c"."_op" = 'collision'
  )
GROUP BY
  "d"."_key"
HAVING
  COUNT(*) > 1
