UPDATE `dinsync_state`.`snap_people_to_crm` AS `s` SET `_pfp` = `k`.`_fp`, `_rkh` = `k`.`_rkh`
FROM `dinsync_state`.`acked_people_to_crm` AS `k`
WHERE
  `k`.`_replace` AND `s`.`_kh` = `k`.`_kh` AND `s`.`_key` = `k`.`_key`
