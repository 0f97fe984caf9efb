SELECT
  COUNT(*) AS "acknowledged"
FROM "temp"."main"."acked_people_to_crm"
