CREATE TABLE `dinsync_state`.`seg_people_to_crm` AS
SELECT
  CASE
    WHEN NOT NULLIF(CAST(`m`.`email` AS STRING), '') IS NULL
    THEN COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0)
  END AS `_rkh`,
  FARM_FINGERPRINT(
    CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`email` AS STRING)), 0) AS STRING) || ',' || CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`first name` AS STRING)), 0) AS STRING) || ',' || CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`score "x"` AS STRING)), 0) AS STRING) || ',' || CAST(COALESCE(FARM_FINGERPRINT(CAST(`m`.`id` AS STRING)), 0) AS STRING)
  ) AS `_fp`
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS `m`
