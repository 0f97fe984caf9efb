SELECT
  "k"."_rn"
FROM "dinsync_commits"."acked_people_to_crm" AS "k"
