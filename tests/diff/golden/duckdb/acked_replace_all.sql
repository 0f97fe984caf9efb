UPDATE "dinsync_commits"."main"."acked_people_to_crm" SET "_replace" = TRUE
