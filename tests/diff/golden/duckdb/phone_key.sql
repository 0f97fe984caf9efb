SELECT
  "m"."i",
  CASE
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g') = ''
    AND REGEXP_REPLACE(
      REGEXP_REPLACE(
        REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''),
        '[-0-9 \t\n\r()./  ‐‑‒–—―−]',
        '',
        'g'
      ),
      '[A-Za-z+]',
      '',
      'g'
    ) = ''
    THEN NULL
    WHEN REGEXP_REPLACE(
      REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''),
      '[-0-9 \t\n\r()./  ‐‑‒–—―−]',
      '',
      'g'
    ) <> ''
    AND NOT (
      REGEXP_REPLACE(
        REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''),
        '[-0-9 \t\n\r()./  ‐‑‒–—―−]',
        '',
        'g'
      ) = '+'
      AND REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9+]', '', 'g') LIKE '+%'
    )
    THEN CAST("m"."k" AS TEXT) COLLATE C
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9+]', '', 'g') LIKE '+%'
    THEN '+' || REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g')
    WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g') LIKE '00%'
    THEN NULLIF(
      '+' || SUBSTRING(
        REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g'),
        3
      ),
      '+'
    )
    ELSE CASE
      WHEN REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g') LIKE '0%'
      THEN '+33' || SUBSTRING(
        REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g'),
        2
      )
      ELSE '+33' || REGEXP_REPLACE(REPLACE(CAST("m"."k" AS TEXT) COLLATE C, '(0)', ''), '[^0-9]', '', 'g')
    END
  END AS "k"
FROM "t" AS "m"
