MERGE INTO `dinsync_state`.`pend_people_to_crm` AS `p`
USING `dinsync_state`.`tokens_people_to_crm` AS `t`
ON `p`.`_key` = `t`.`_key` AND `p`.`_token` IS NULL
WHEN MATCHED THEN UPDATE SET
  `_token` = `t`.`_token`
