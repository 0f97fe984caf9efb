DELETE FROM "dinsync_state"."snap_people_to_crm"
WHERE
  "_kh" IN (
    SELECT
      "p"."_kh"
    FROM "dinsync_commits"."main"."acked_people_to_crm" AS "p"
    WHERE
      "p"."_replace"
  )
  AND "_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_commits"."main"."acked_people_to_crm" AS "p"
    WHERE
      "p"."_replace"
  )
