DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."unsettle_people_to_crm"
