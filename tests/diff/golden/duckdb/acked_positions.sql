SELECT
  "k"."_rn"
FROM "dinsync_commits"."main"."acked_people_to_crm" AS "k"
