CREATE TABLE `dinsync_scratch`.`buckets_people_to_crm` AS
WITH `seg` AS (
  SELECT
    COALESCE(MOD(`r`.`_rkh`, 16384), 16384) AS `_b`,
    COUNT(*) AS `_n`,
    BIT_XOR(FARM_FINGERPRINT(CAST(`r`.`_rkh` AS STRING) || ',' || CAST(`r`.`_fp` AS STRING))) AS `_d`
  FROM (
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
  ) AS `r`
  GROUP BY
    COALESCE(MOD(`r`.`_rkh`, 16384), 16384)
), `snap` AS (
  SELECT
    COALESCE(MOD(`s`.`_rkh`, 16384), 16385) AS `_b`,
    COUNT(*) AS `_n`,
    COUNT(COALESCE(`s`.`_pfp`, `s`.`_fp`)) AS `_n_fp`,
    BIT_XOR(
      FARM_FINGERPRINT(
        CAST(`s`.`_rkh` AS STRING) || ',' || CAST(COALESCE(`s`.`_pfp`, `s`.`_fp`) AS STRING)
      )
    ) AS `_d`
  FROM `dinsync_state`.`snap_people_to_crm` AS `s`
  WHERE
    TRUE
  GROUP BY
    COALESCE(MOD(`s`.`_rkh`, 16384), 16385)
)
SELECT
  COALESCE(`a`.`_b`, `b`.`_b`) AS `_b`,
  COALESCE(`a`.`_n`, 0) AS `_seg_n`,
  COALESCE(`b`.`_n`, 0) AS `_snap_n`,
  COALESCE(`a`.`_b`, `b`.`_b`) <> 16384
  AND (
    `a`.`_b` IS NULL
    OR `b`.`_b` IS NULL
    OR `a`.`_n` <> `b`.`_n`
    OR `b`.`_n_fp` <> `b`.`_n`
    OR `a`.`_d` <> `b`.`_d`
  ) AS `_dirty`
FROM `seg` AS `a`
FULL OUTER JOIN `snap` AS `b`
  ON `a`.`_b` = `b`.`_b`
