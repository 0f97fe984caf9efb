SELECT
  COUNT(*) AS "duplicated"
FROM (
  SELECT
    "p"."_kh"
  FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
  WHERE
    "p"."_op" = 'added'
  GROUP BY
    "p"."_kh"
  HAVING
    COUNT(*) > 1
) AS "d"
