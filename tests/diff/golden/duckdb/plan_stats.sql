SELECT
  COALESCE(SUM(CASE WHEN "p"."_op" = 'skipped' THEN "p"."_n" END), 0) AS "skipped",
  COUNT(CASE WHEN "p"."_op" = 'duplicate' THEN 1 END) AS "duplicate_keys",
  COALESCE(SUM(CASE WHEN "p"."_op" = 'duplicate' THEN "p"."_n" END), 0) AS "duplicate_rows",
  COUNT(CASE WHEN "p"."_op" = 'added' THEN 1 END) AS "added",
  COUNT(CASE WHEN "p"."_op" = 'changed' THEN 1 END) AS "changed",
  COUNT(CASE WHEN "p"."_op" = 'removed' THEN 1 END) AS "removed",
  COUNT(CASE WHEN "p"."_op" = 'forget' THEN 1 END) AS "forget",
  COUNT(CASE WHEN "p"."_op" IN ('refresh', 'rekey') THEN 1 END) AS "refresh"
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
