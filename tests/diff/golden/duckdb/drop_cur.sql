DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."cur_people_to_crm"
