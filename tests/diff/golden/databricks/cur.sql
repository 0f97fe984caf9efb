CREATE TABLE `dinsync_state`.`cur_people_to_crm` AS
SELECT
  NULLIF(
    LOWER(
      TRIM(BOTH CHR(  9) || CHR(  10) || CHR(  11) || CHR(  12) || CHR(  13) || '                  　' FROM CAST(`m`.`email` AS STRING))
    ),
    ''
  ) AS `_key`,
  CASE
    WHEN NOT NULLIF(CAST(`m`.`email` AS STRING), '') IS NULL
    THEN CASE WHEN `m`.`email` IS NULL THEN 0 ELSE XXHASH64(CAST(`m`.`email` AS STRING)) END
  END AS `_rkh`,
  XXHASH64(
    CASE WHEN `m`.`email` IS NULL THEN 0 ELSE XXHASH64(CAST(`m`.`email` AS STRING)) END,
    CASE
      WHEN `m`.`first name` IS NULL
      THEN 0
      ELSE XXHASH64(CAST(`m`.`first name` AS STRING))
    END,
    CASE
      WHEN `m`.`score "x"` IS NULL
      THEN 0
      ELSE XXHASH64(CAST(`m`.`score "x"` AS STRING))
    END,
    CASE WHEN `m`.`id` IS NULL THEN 0 ELSE XXHASH64(CAST(`m`.`id` AS STRING)) END
  ) AS `_fp`,
  `m`.`email` AS `v0`,
  `m`.`first name` AS `v1`,
  `m`.`score "x"` AS `v2`,
  `m`.`id` AS `v3`
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS `m`
WHERE
  CASE
    WHEN NOT NULLIF(CAST(`m`.`email` AS STRING), '') IS NULL
    THEN CASE WHEN `m`.`email` IS NULL THEN 0 ELSE XXHASH64(CAST(`m`.`email` AS STRING)) END
  END IN (
    SELECT
      `c`.`_rkh`
    FROM `dinsync_state`.`cand_people_to_crm` AS `c`
    WHERE
      `c`.`_in_seg`
  )
