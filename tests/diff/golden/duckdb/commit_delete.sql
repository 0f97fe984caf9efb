DELETE FROM "dinsync_state"."snap_people_to_crm"
WHERE
  "_kh" IN (
    SELECT
      "k"."_kh"
    FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
    WHERE
      "k"."_replace"
  )
  AND "_key" IN (
    SELECT
      "k"."_key"
    FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
    WHERE
      "k"."_replace"
  )
