DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."seg_people_to_crm"
