DROP TABLE IF EXISTS "dinsync_scratch_people_to_crm"."main"."buckets_people_to_crm"
