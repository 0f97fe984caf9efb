DROP TABLE IF EXISTS "dinsync_commits"."main"."acked_people_to_crm"
