DROP TABLE IF EXISTS "dinsync_commits"."acked_people_to_crm"
