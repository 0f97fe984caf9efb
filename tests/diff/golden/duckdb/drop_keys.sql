DROP TABLE IF EXISTS "temp"."main"."keys_people_to_crm"
