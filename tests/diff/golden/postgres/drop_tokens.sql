DROP TABLE IF EXISTS "dinsync_state"."tokens_people_to_crm"
