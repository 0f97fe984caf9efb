DROP TABLE IF EXISTS "dinsync_state"."seg_people_to_crm"
