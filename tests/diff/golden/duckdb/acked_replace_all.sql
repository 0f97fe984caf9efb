UPDATE "dinsync_scratch"."acked_people_to_crm" AS "k" SET "_replace" = TRUE, "_kh" = "p"."_kh", "_key" = "p"."_key"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
WHERE
  "p"."rowid" = "k"."_rn"
