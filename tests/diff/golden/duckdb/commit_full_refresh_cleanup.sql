DELETE FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  NOT EXISTS(
    SELECT
      1
    FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
    WHERE
      "p"."_kh" = "s"."_kh"
      AND "p"."_key" = "s"."_key"
      AND NOT "p"."_op" IN ('duplicate', 'withheld')
  )
