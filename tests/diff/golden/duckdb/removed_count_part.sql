SELECT
  COUNT(*) AS "removed"
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  "s"."_kh" IN (
    SELECT
      "p"."_kh"
    FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
    WHERE
      "p"."_op" = 'removed'
      AND ABS("p"."_kh" % 9110000000000000004) = 9110000000000000005
  )
  AND "s"."_key" IN (
    SELECT
      "p"."_key"
    FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
    WHERE
      "p"."_op" = 'removed'
      AND ABS("p"."_kh" % 9110000000000000004) = 9110000000000000005
  )
