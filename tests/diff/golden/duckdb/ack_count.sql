SELECT
  COUNT(*) AS "acknowledged",
  COUNT(CASE WHEN "k"."_replace" THEN 1 END) AS "replace"
FROM "dinsync_commits"."main"."acked_people_to_crm" AS "k"
