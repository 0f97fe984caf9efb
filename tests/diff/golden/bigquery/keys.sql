CREATE TABLE `dinsync_state`.`keys_people_to_crm` AS
SELECT
  CASE
    WHEN NOT `k`.`_key` IS NULL
    THEN COALESCE(FARM_FINGERPRINT(CAST(`k`.`_key` AS STRING)), 0)
  END AS `_kh`,
  `k`.`_fp`,
  `k`.`_rkh`
FROM (
  SELECT
    NULLIF(LOWER(TRIM(CAST(`m`.`email` AS STRING))), '') AS `_key`,
    FARM_FINGERPRINT(
      CONCAT(
        CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0) AS STRING),
        ',',
        CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`first name` AS STRING)), 0) AS STRING),
        ',',
        CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`score "x"` AS STRING)), 0) AS STRING),
        ',',
        CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`id` AS STRING)), 0) AS STRING)
      )
    ) AS `_fp`,
    COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0) AS `_rkh`
  FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS `m`
) AS `k`
