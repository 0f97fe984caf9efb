DELETE FROM "dinsync_state"."snap_people_to_crm"
WHERE
  "_kh" IN (
    SELECT
      "p"."_kh"
    FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
    WHERE
      "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
      AND "p"."rowid" IN (
        SELECT
          "k"."_rn"
        FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
      )
  )
  AND "_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
    WHERE
      "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
      AND "p"."rowid" IN (
        SELECT
          "k"."_rn"
        FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
      )
  )
