DELETE FROM "dinsync_state"."pend_people_to_crm"
WHERE
  "_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_commits"."main"."ack_people_to_crm" AS "a"
  )
