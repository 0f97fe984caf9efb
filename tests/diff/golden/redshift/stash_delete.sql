DELETE FROM "dinsync_state"."pend_people_to_crm"
WHERE
  "_key" IN (
    SELECT
      "k"."_key"
    FROM "dinsync_state"."acked_people_to_crm" AS "k"
  )
  OR "_token" IS NULL
