DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm"
