CREATE TABLE `dinsync_state`.`buckets_people_to_crm` AS
WITH `seg` AS (
  SELECT
    COALESCE(`r`.`_rkh` % 16384, 16384) AS `_b`,
    COUNT(*) AS `_n`,
    BIT_XOR(XXHASH64(`r`.`_rkh`, `r`.`_fp`)) AS `_d`
  FROM (
    SELECT
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
      ) AS `_fp`
    FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS `m`
  ) AS `r`
  GROUP BY
    COALESCE(`r`.`_rkh` % 16384, 16384)
), `snap` AS (
  SELECT
    COALESCE(`s`.`_rkh` % 16384, 16385) AS `_b`,
    COUNT(*) AS `_n`,
    COUNT(COALESCE(`s`.`_pfp`, `s`.`_fp`)) AS `_n_fp`,
    BIT_XOR(XXHASH64(`s`.`_rkh`, COALESCE(`s`.`_pfp`, `s`.`_fp`))) AS `_d`
  FROM `dinsync_state`.`snap_people_to_crm` AS `s`
  WHERE
    TRUE
  GROUP BY
    COALESCE(`s`.`_rkh` % 16384, 16385)
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
