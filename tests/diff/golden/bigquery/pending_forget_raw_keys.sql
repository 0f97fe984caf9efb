UPDATE `dinsync_state`.`pend_people_to_crm` SET `_rkh` = NULL
WHERE
  NOT `_rkh` IS NULL
