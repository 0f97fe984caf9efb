SELECT
  COALESCE(SUM(`b`.`_seg_n`), 0) AS `segment_rows`,
  COALESCE(SUM(CASE WHEN `b`.`_b` = 16384 THEN `b`.`_seg_n` END), 0) AS `null_keys`,
  COUNT(CASE WHEN `b`.`_dirty` THEN 1 END) AS `dirty`,
  COUNT(CASE WHEN `b`.`_b` < 16384 THEN 1 END) AS `buckets`
FROM `dinsync_state`.`buckets_people_to_crm` AS `b`
