DROP TABLE IF EXISTS "dinsync_scratch"."seg_people_to_crm"
