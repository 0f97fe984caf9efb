MERGE INTO `dinsync_state`.`snap_people_to_crm` AS `s`
USING `dinsync_state`.`plan_people_to_crm` AS `p`
ON `p`.`_op` IN ('refresh', 'rekey')
AND `s`.`_kh` = `p`.`_kh`
AND `s`.`_key` = `p`.`_key`
WHEN MATCHED THEN UPDATE SET
  `_fp` = CASE WHEN `p`.`_op` = 'refresh' THEN `p`.`_fp` ELSE `s`.`_fp` END,
  `_pfp` = CASE WHEN `p`.`_op` = 'refresh' THEN NULL ELSE `s`.`_pfp` END,
  `_rkh` = `p`.`_rkh`
