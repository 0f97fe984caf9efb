INSERT INTO "dinsync_scratch"."acked_people_to_crm" (
  "_rn",
  "_replace",
  "_kh",
  "_key"
)
SELECT
  "p"."rowid",
  "p"."_prior",
  "p"."_kh",
  "p"."_key"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" IN ('added', 'changed')
  AND "p"."_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_scratch"."ack_people_to_crm" AS "a"
  )
  AND NOT "p"."rowid" IN (
    SELECT
      "k"."_rn"
    FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
  )
