SELECT
  "g"."_key",
  "g"."_n"
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
WHERE
  NOT "g"."_key" IS NULL AND "g"."_n" > 1
ORDER BY
  "g"."_n" DESC NULLS LAST,
  "g"."_key" NULLS FIRST
LIMIT 7
