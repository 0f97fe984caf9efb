SELECT
  COUNT(*) AS `parked`
FROM `dinsync_state`.`snap_people_to_crm` AS `s`
WHERE
  NOT `s`.`_pfp` IS NULL
