SELECT
  "g"."_key",
  "g"."_n"
FROM (
  SELECT
    NULLIF(
      LOWER(
        CASE
          WHEN ASCII(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C) > 32
          AND ASCII(RIGHT(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C, 1)) > 32
          AND STRLEN(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C) = LENGTH(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C)
          THEN CAST("m"."e-mail ""main""" AS TEXT) COLLATE C
          ELSE REGEXP_REPLACE(
            CAST("m"."e-mail ""main""" AS TEXT) COLLATE C,
            '^[\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+|[\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+$',
            '',
            'g'
          )
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
          WHEN ASCII(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C) > 32
          AND ASCII(RIGHT(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C, 1)) > 32
          AND STRLEN(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C) = LENGTH(CAST("m"."e-mail ""main""" AS TEXT) COLLATE C)
          THEN CAST("m"."e-mail ""main""" AS TEXT) COLLATE C
          ELSE REGEXP_REPLACE(
            CAST("m"."e-mail ""main""" AS TEXT) COLLATE C,
            '^[\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+|[\t\n\v\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+$',
            '',
            'g'
          )
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
