DELETE FROM `dinsync_state`.`snap_people_to_crm`
WHERE
  TRUE
