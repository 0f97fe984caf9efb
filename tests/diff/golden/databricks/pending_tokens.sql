SELECT
  `p`.`_token`,
  COUNT(*) AS `_n`
FROM `dinsync_state`.`pend_people_to_crm` AS `p`
WHERE
  NOT `p`.`_token` IS NULL
GROUP BY
  `p`.`_token`
