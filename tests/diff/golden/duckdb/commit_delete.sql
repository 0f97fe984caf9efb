DELETE FROM "dinsync_state"."snap_people_to_crm"
WHERE
  "_kh" IN (
    SELECT
      "p"."_kh"
    FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
    JOIN "dinsync_scratch"."acked_people_to_crm" AS "k"
      ON "p"."rowid" = "k"."_rn"
    WHERE
      "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
      AND "k"."_replace"
  )
  AND "_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
    JOIN "dinsync_scratch"."acked_people_to_crm" AS "k"
      ON "p"."rowid" = "k"."_rn"
    WHERE
      "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
      AND "k"."_replace"
  )
