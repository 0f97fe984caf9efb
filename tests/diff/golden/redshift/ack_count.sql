SELECT
  COUNT(*) AS "acknowledged"
FROM "dinsync_state"."acked_people_to_crm"
