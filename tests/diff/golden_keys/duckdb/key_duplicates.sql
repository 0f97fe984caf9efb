SELECT
  "g"."_key",
  "g"."_n"
FROM (
  SELECT
    NULLIF(
      LOWER(
        CASE
          WHEN CAST("m"."e-mail ""main""" AS TEXT) NOT LIKE ' %'
          AND CAST("m"."e-mail ""main""" AS TEXT) NOT LIKE '% '
          AND STRLEN(CAST("m"."e-mail ""main""" AS TEXT)) = LENGTH(CAST("m"."e-mail ""main""" AS TEXT))
          THEN CAST("m"."e-mail ""main""" AS TEXT)
          ELSE TRIM(CAST("m"."e-mail ""main""" AS TEXT))
        END
      ),
      ''
    ) AS "_key",
    COUNT(*) AS "_n"
  FROM (
SELECT id, email FROM analytics.people WHERE active
) AS "m"
  GROUP BY
    NULLIF(
      LOWER(
        CASE
          WHEN CAST("m"."e-mail ""main""" AS TEXT) NOT LIKE ' %'
          AND CAST("m"."e-mail ""main""" AS TEXT) NOT LIKE '% '
          AND STRLEN(CAST("m"."e-mail ""main""" AS TEXT)) = LENGTH(CAST("m"."e-mail ""main""" AS TEXT))
          THEN CAST("m"."e-mail ""main""" AS TEXT)
          ELSE TRIM(CAST("m"."e-mail ""main""" AS TEXT))
        END
      ),
      ''
    )
) AS "g"
WHERE
  NOT "g"."_key" IS NULL AND "g"."_n" > 1
ORDER BY
  "g"."_n" DESC,
  "g"."_key" NULLS FIRST
LIMIT 7
