UPDATE `dinsync_state`.`snap_people_to_crm` SET `_kh` = CASE WHEN `_key` IS NULL THEN 0 ELSE XXHASH64(CAST(`_key` AS STRING)) END
WHERE
  `_kh` IS NULL
