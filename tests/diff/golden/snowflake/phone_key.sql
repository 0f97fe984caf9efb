SELECT
  "m"."i",
  CASE
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', '') = ''
    AND REGEXP_REPLACE(
      REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[-0-9 \t\n\r()./  ‐‑‒–—―−]', ''),
      '[A-Za-z+]',
      ''
    ) = ''
    THEN NULL
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[-0-9 \t\n\r()./  ‐‑‒–—―−]', '') <> ''
    AND NOT (
      REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[-0-9 \t\n\r()./  ‐‑‒–—―−]', '') = '+'
      AND REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9+]', '') LIKE '+%'
    )
    THEN CAST("m"."k" AS VARCHAR)
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9+]', '') LIKE '+%'
    THEN '+' || REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', '')
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', '') LIKE '00%'
    THEN NULLIF(
      '+' || SUBSTRING(REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', ''), 3),
      '+'
    )
    ELSE CASE
      WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', '') LIKE '0%'
      THEN '+33' || SUBSTRING(REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', ''), 2)
      ELSE '+33' || REGEXP_REPLACE(REPLACE(CAST("m"."k" AS VARCHAR), '(0)', ''), '[^0-9]', '')
    END
  END AS "k"
FROM "t" AS "m"
