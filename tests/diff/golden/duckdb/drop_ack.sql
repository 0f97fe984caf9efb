DROP TABLE IF EXISTS "dinsync_commits"."main"."ack_people_to_crm"
