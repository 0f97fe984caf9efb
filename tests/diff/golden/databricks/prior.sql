CREATE TABLE `dinsync_state`.`prior_people_to_crm` AS
SELECT
  `s`.*
FROM `dinsync_state`.`snap_people_to_crm` AS `s`
WHERE
  `s`.`_kh` IN (
    SELECT
      CASE WHEN `c`.`_key` IS NULL THEN 0 ELSE XXHASH64(CAST(`c`.`_key` AS STRING)) END
    FROM `dinsync_state`.`cur_people_to_crm` AS `c`
    WHERE
      NOT `c`.`_key` IS NULL
    UNION ALL
    SELECT
      `c`.`_kh`
    FROM `dinsync_state`.`cand_people_to_crm` AS `c`
    WHERE
      `c`.`_in_snap` AND NOT `c`.`_in_seg`
  )
