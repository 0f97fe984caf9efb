SELECT
  COUNT(*) AS "parked"
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  NOT "s"."_pfp" IS NULL
  AND "s"."_synced_at" IS NULL
  AND NOT (
    "s"."_kh" IN (
      SELECT
        "p"."_kh"
      FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
      WHERE
        "p"."_op" IN ('removed', 'forget', 'added', 'changed', 'refresh')
    )
    AND "s"."_key" IN (
      SELECT
        "p"."_key"
      FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
      WHERE
        "p"."_op" IN ('removed', 'forget', 'added', 'changed', 'refresh')
    )
  )
