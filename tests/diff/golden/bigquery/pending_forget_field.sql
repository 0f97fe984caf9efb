UPDATE `dinsync_state`.`pend_people_to_crm` SET `f_a88b7dcd1a9e3e17` = NULL
WHERE
  NOT `f_a88b7dcd1a9e3e17` IS NULL
