UPDATE "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" SET "_op" = 'withheld'
WHERE
  "_op" = 'added'
  AND "_kh" IN (
    SELECT
      "d"."_kh"
    FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "d"
    WHERE
      "d"."_op" = 'duplicate'
  )
  AND "_key" IN (
    SELECT
      "d"."_key"
    FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "d"
    WHERE
      "d"."_op" = 'duplicate'
  )
