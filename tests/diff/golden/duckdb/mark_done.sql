UPDATE "dinsync_scratch"."plan_people_to_crm" SET "_done" = TRUE
WHERE
  "rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
  AND "rowid" IN (
    SELECT
      "k"."_rn"
    FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
  )
