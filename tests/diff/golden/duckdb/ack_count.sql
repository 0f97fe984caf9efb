SELECT
  COUNT(*) AS "acknowledged",
  COUNT(CASE WHEN "k"."_replace" THEN 1 END) AS "replace",
  MIN("k"."_rn") AS "lo",
  MAX("k"."_rn") AS "hi"
FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
