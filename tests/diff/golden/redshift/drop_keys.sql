DROP TABLE IF EXISTS "dinsync_state"."keys_people_to_crm"
