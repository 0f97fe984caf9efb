SELECT
  CASE
    WHEN EXISTS(
      SELECT
        1
      FROM `dinsync_state`.`snap_people_to_crm` AS `s`
    )
    THEN 0
    ELSE 1
  END AS `empty`
