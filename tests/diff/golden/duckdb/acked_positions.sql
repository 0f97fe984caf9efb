SELECT
  "k"."_rn"
FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
