SELECT
  COUNT(*) AS `stale`,
  COUNT(CASE WHEN `d`.`_kh` IS NULL AND NOT `s`.`_synced_at` IS NULL THEN 1 END) AS `gone`
FROM `dinsync_state`.`snap_people_to_crm` AS `s`
LEFT JOIN (
  SELECT DISTINCT
    `p`.`_kh`,
    `p`.`_key`
  FROM `dinsync_state`.`plan_people_to_crm` AS `p`
  WHERE
    `p`.`_op` = 'duplicate'
) AS `d`
  ON `d`.`_kh` = `s`.`_kh` AND `d`.`_key` = `s`.`_key`
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM `dinsync_state`.`plan_people_to_crm` AS `p`
    WHERE
      `p`.`_kh` = `s`.`_kh`
      AND `p`.`_key` = `s`.`_key`
      AND NOT `p`.`_op` IN ('duplicate', 'withheld')
  )
