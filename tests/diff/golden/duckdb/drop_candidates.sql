DROP TABLE IF EXISTS "temp"."main"."cand_people_to_crm"
