SELECT
  "g"."_key",
  "g"."_n"
FROM (
  SELECT
    NULLIF(
      LOWER(
        CASE
          WHEN CAST("m"."e-mail ""main""" AS TEXT) COLLATE C NOT LIKE ' %'
          AND CAST("m"."e-mail ""main""" AS TEXT) COLLATE C NOT LIKE '% '
          AND STRLEN(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C) = LENGTH(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C)
          THEN CAST("m"."e-mail ""main""" AS TEXT) COLLATE C
          ELSE TRIM(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C)
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
          WHEN CAST("m"."e-mail ""main""" AS TEXT) COLLATE C NOT LIKE ' %'
          AND CAST("m"."e-mail ""main""" AS TEXT) COLLATE C NOT LIKE '% '
          AND STRLEN(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C) = LENGTH(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C)
          THEN CAST("m"."e-mail ""main""" AS TEXT) COLLATE C
          ELSE TRIM(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C)
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
