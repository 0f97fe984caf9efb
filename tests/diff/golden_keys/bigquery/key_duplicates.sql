SELECT
  `g`.`_key`,
  `g`.`_n`
FROM (
  SELECT
    NULLIF(
      LOWER(TRIM(CAST(`m`.`e-mail "main"` AS STRING), '\t\n\v\f\r                  　')),
      ''
    ) AS `_key`,
    COUNT(*) AS `_n`
  FROM (
SELECT id, email FROM analytics.people WHERE active
) AS `m`
  GROUP BY
    NULLIF(
      LOWER(TRIM(CAST(`m`.`e-mail "main"` AS STRING), '\t\n\v\f\r                  　')),
      ''
    )
) AS `g`
WHERE
  NOT `g`.`_key` IS NULL AND `g`.`_n` > 1
ORDER BY
  `g`.`_n` DESC,
  `g`.`_key`
LIMIT 7
