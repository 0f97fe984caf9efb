DROP TABLE IF EXISTS "dinsync_commits"."main"."tokens_people_to_crm"
