INSERT INTO "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" (
  "_key",
  "_op",
  "_n",
  "_kh"
)
SELECT
  "p"."_key",
  'duplicate',
  COUNT(*),
  MIN("p"."_kh")
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" = 'added'
  AND "p"."_kh" IN (
    SELECT
      "d"."_kh"
    FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "d"
    WHERE
      "d"."_op" = 'added'
    GROUP BY
      "d"."_kh"
    HAVING
      COUNT(*) > 1
  )
GROUP BY
  "p"."_key"
HAVING
  COUNT(*) > 1
