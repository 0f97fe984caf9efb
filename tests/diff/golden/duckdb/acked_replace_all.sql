UPDATE "dinsync_scratch"."acked_people_to_crm" SET "_replace" = TRUE
