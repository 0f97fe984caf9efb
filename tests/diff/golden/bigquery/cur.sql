CREATE TABLE `dinsync_scratch`.`cur_people_to_crm` AS
SELECT
  NULLIF(LOWER(TRIM(CAST(`m`.`email` AS STRING), '\t\n\v\f\r                  　')), '') AS `_key`,
  CASE
    WHEN NOT NULLIF(CAST(`m`.`email` AS STRING), '') IS NULL
    THEN COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0)
  END AS `_rkh`,
  FARM_FINGERPRINT(
    CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0) AS STRING) || ',' || CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`first name` AS STRING)), 0) AS STRING) || ',' || CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`score "x"` AS STRING)), 0) AS STRING) || ',' || CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`id` AS STRING)), 0) AS STRING)
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
    THEN COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0)
  END IN (
    SELECT
      `c`.`_rkh`
    FROM `dinsync_scratch`.`cand_people_to_crm` AS `c`
    WHERE
      `c`.`_in_seg`
  )
