SELECT
  `p`.`_key`,
  `p`.`_op`,
  `p`.`v0`,
  `p`.`v1`,
  `p`.`v2`,
  `p`.`v3`,
  `p`.`x0`,
  `p`.`x1`,
  `p`.`x2`,
  `p`.`x3`
FROM `dinsync_state`.`plan_people_to_crm` AS `p`
WHERE
  `p`.`_op` IN ('added', 'changed')
