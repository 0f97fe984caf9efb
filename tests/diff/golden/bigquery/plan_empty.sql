CREATE TABLE `dinsync_scratch`.`plan_people_to_crm` AS
SELECT
  CAST(NULL AS STRING) AS `_key`,
  CAST(NULL AS STRING) AS `_op`,
  `m`.`email` AS `v0`,
  `m`.`first name` AS `v1`,
  `m`.`score "x"` AS `v2`,
  `m`.`id` AS `v3`,
  CAST(NULL AS BOOL) AS `x0`,
  CAST(NULL AS BOOL) AS `x1`,
  CAST(NULL AS BOOL) AS `x2`,
  CAST(NULL AS BOOL) AS `x3`,
  CAST(NULL AS INT64) AS `_n`,
  CAST(NULL AS INT64) AS `_kh`,
  CAST(NULL AS INT64) AS `_rkh`,
  CAST(NULL AS INT64) AS `_fp`,
  CAST(NULL AS BOOL) AS `_prior`
FROM (
SELECT id, email, first_name, score FROM analytics.people WHERE active -- only active people
) AS `m`
WHERE
  FALSE
