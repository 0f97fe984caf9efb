SELECT
  COUNT(CASE WHEN "c"."_in_seg" AND NOT "c"."_in_snap" THEN 1 END) AS "new",
  COUNT(CASE WHEN "c"."_in_snap" AND NOT "c"."_in_seg" THEN 1 END) AS "gone"
FROM "dinsync_scratch_people_to_crm"."main"."cand_people_to_crm" AS "c"
