SELECT
  COALESCE(SUM("g"."_n"), 0) AS "segment_rows",
  COALESCE(SUM(CASE WHEN "g"."_key" IS NULL THEN "g"."_n" END), 0) AS "null_keys",
  COUNT(CASE WHEN NOT "g"."_key" IS NULL AND "g"."_n" > 1 THEN 1 END) AS "duplicate_keys",
  COALESCE(SUM(CASE WHEN NOT "g"."_key" IS NULL AND "g"."_n" > 1 THEN "g"."_n" END), 0) AS "duplicate_rows"
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
