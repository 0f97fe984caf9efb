MERGE INTO `dinsync_state`.`snap_people_to_crm` AS `s`
USING (
  SELECT
    `p`.`_kh`,
    `p`.`_key`,
    `p`.`_fp`,
    `p`.`_rkh`
  FROM `dinsync_state`.`acked_people_to_crm` AS `p`
  WHERE
    `p`.`_replace`
) AS `r`
ON `s`.`_kh` = `r`.`_kh` AND `s`.`_key` = `r`.`_key`
WHEN MATCHED THEN UPDATE SET
  `_pfp` = `r`.`_fp`,
  `_rkh` = `r`.`_rkh`
