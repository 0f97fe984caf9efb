DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."prior_people_to_crm"
