CREATE TABLE "dinsync_scratch"."plan_people_to_crm" AS
SELECT
  CAST(NULL AS TEXT) AS "_key",
  CASE WHEN "h"."_kh" IS NULL THEN 'skipped' ELSE 'collision' END AS "_op",
  COUNT(*) AS "_n",
  "h"."_kh"
FROM (
  SELECT
    CASE WHEN NOT "k"."_key" IS NULL THEN HASH(CAST("k"."_key" AS TEXT)) END AS "_kh"
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
) AS "h"
GROUP BY
  "h"."_kh"
HAVING
  "h"."_kh" IS NULL OR COUNT(*) > 1
