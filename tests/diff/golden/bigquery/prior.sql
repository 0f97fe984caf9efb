CREATE TABLE `dinsync_scratch`.`prior_people_to_crm` AS
SELECT
  `s`.*
FROM `dinsync_state`.`snap_people_to_crm` AS `s`
WHERE
  `s`.`_kh` IN (
    SELECT
      COALESCE(FARM_FINGERPRINT(CAST(`c`.`_key` AS STRING)), 0)
    FROM `dinsync_scratch`.`cur_people_to_crm` AS `c`
    WHERE
      NOT `c`.`_key` IS NULL
    UNION ALL
    SELECT
      `c`.`_kh`
    FROM `dinsync_scratch`.`cand_people_to_crm` AS `c`
    WHERE
      `c`.`_in_snap` AND NOT `c`.`_in_seg`
  )
