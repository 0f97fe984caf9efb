DROP TABLE IF EXISTS "dinsync_state"."unsettle_people_to_crm"
