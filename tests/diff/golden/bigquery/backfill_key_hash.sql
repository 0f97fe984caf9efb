UPDATE `dinsync_state`.`snap_people_to_crm` SET `_kh` = COALESCE(FARM_FINGERPRINT(CAST(`_key` AS STRING)), 0)
WHERE
  `_kh` IS NULL
