INSERT INTO "dinsync_state"."snap_people_to_crm" (
  "_key",
  "_synced_at",
  "_kh",
  "_rkh"
)
SELECT
  "u"."_key",
  "u"."_synced_at",
  "u"."_kh",
  "u"."_rkh"
FROM "dinsync_scratch_people_to_crm"."main"."unsettle_people_to_crm" AS "u"
