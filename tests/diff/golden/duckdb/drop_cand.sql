DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."cand_people_to_crm"
