UPDATE "dinsync_state"."acked_people_to_crm" SET "_replace" = TRUE
