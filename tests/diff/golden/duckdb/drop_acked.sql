DROP TABLE IF EXISTS "temp"."main"."acked_people_to_crm"
