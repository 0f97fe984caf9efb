SELECT
  `p`.`_key`,
  `p`.`_n`
FROM `dinsync_state`.`plan_people_to_crm` AS `p`
WHERE
  `p`.`_op` = 'duplicate'
ORDER BY
  `p`.`_n` DESC,
  `p`.`_key`
LIMIT 9110000000000000003
