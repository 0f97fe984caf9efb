CREATE TABLE "dinsync_state"."unsettle_people_to_crm" AS
SELECT
  "s"."_key",
  "s"."_synced_at",
  "s"."_kh",
  "s"."_rkh"
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  "s"."_kh" IN (
    SELECT
      "p"."_kh"
    FROM "dinsync_state"."plan_people_to_crm" AS "p"
    WHERE
      "p"."_op" IN ('added', 'changed') AND "p"."_prior"
  )
  AND "s"."_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_state"."plan_people_to_crm" AS "p"
    WHERE
      "p"."_op" IN ('added', 'changed') AND "p"."_prior"
  )
