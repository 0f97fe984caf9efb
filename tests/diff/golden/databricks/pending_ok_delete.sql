DELETE FROM `dinsync_state`.`snap_people_to_crm`
WHERE
  `_kh` IN (
    SELECT
      `p`.`_kh`
    FROM `dinsync_state`.`pend_people_to_crm` AS `p`
    JOIN `dinsync_state`.`ack_people_to_crm` AS `a`
      ON `a`.`_key` = `p`.`_key`
  )
  AND `_key` IN (
    SELECT
      `p`.`_key`
    FROM `dinsync_state`.`pend_people_to_crm` AS `p`
    JOIN `dinsync_state`.`ack_people_to_crm` AS `a`
      ON `a`.`_key` = `p`.`_key`
  )
