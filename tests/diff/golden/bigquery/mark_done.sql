UPDATE `dinsync_scratch`.`plan_people_to_crm` SET `_done` = TRUE
WHERE
  `_op` IN ('added', 'changed')
  AND `_key` IN (
    SELECT
      `k`.`_key`
    FROM `dinsync_scratch`.`acked_people_to_crm` AS `k`
  )
