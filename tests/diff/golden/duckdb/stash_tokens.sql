UPDATE "dinsync_state"."pend_people_to_crm" AS "p" SET "_token" = "t"."_token"
FROM "dinsync_commits"."main"."tokens_people_to_crm" AS "t"
WHERE
  "p"."_key" = "t"."_key" AND "p"."_token" IS NULL
