UPDATE `dinsync_state`.`plan_people_to_crm` SET `_done` = TRUE
WHERE
  `_op` IN ('added', 'changed')
  AND `_key` IN (
    SELECT
      `k`.`_key`
    FROM `dinsync_state`.`acked_people_to_crm` AS `k`
  )
