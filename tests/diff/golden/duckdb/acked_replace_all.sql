UPDATE "dinsync_commits"."acked_people_to_crm" SET "_replace" = TRUE
