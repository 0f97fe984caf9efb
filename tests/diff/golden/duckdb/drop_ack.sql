DROP TABLE IF EXISTS "dinsync_commits"."ack_people_to_crm"
