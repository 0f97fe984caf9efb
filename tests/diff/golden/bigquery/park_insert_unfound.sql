INSERT INTO `dinsync_state`.`snap_people_to_crm` (
  `_key`,
  `_synced_at`,
  `_kh`,
  `_fp`,
  `_rkh`,
  `_pfp`
)
SELECT
  `p`.`_key`,
  NULL,
  `p`.`_kh`,
  NULL,
  `p`.`_rkh`,
  `p`.`_fp`
FROM `dinsync_scratch`.`acked_people_to_crm` AS `p`
WHERE
  `p`.`_replace`
  AND NOT EXISTS(
    SELECT
      1
    FROM `dinsync_state`.`snap_people_to_crm` AS `s`
    WHERE
      `s`.`_kh` = `p`.`_kh` AND `s`.`_key` = `p`.`_key`
  )
