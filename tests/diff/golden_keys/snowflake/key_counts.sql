SELECT
  COALESCE(SUM("g"."_n"), 0) AS "segment_rows",
  COALESCE(SUM(CASE WHEN "g"."_key" IS NULL THEN "g"."_n" END), 0) AS "null_keys",
  COUNT(CASE WHEN NOT "g"."_key" IS NULL AND "g"."_n" > 1 THEN 1 END) AS "duplicate_keys",
  COALESCE(SUM(CASE WHEN NOT "g"."_key" IS NULL AND "g"."_n" > 1 THEN "g"."_n" END), 0) AS "duplicate_rows"
FROM (
  SELECT
    NULLIF(
      LOWER(
        TRIM(
          CAST("m"."e-mail ""main""" AS VARCHAR),
          CHR(  9) || CHR(  10) || CHR(  11) || CHR(  12) || CHR(  13) || '                  　'
        )
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
        TRIM(
          CAST("m"."e-mail ""main""" AS VARCHAR),
          CHR(  9) || CHR(  10) || CHR(  11) || CHR(  12) || CHR(  13) || '                  　'
        )
      ),
      ''
    )
) AS "g"
