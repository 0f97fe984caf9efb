DELETE FROM "dinsync_state"."snap_people_to_crm"
WHERE
  "_kh" IN (
    SELECT
      "u"."_kh"
    FROM "dinsync_scratch_people_to_crm"."main"."unsettle_people_to_crm" AS "u"
  )
  AND "_key" IN (
    SELECT
      "u"."_key"
    FROM "dinsync_scratch_people_to_crm"."main"."unsettle_people_to_crm" AS "u"
  )
