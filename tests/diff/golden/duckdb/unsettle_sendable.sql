UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_fp" = NULL, "_pfp" = NULL, "f_a88b7dcd1a9e3e17" = NULL, "f_b6ea992aab466831" = NULL, "f_b205e07e594ce1db" = NULL, "f_a720b844fa90091f" = NULL
FROM (
  SELECT
    "p"."_kh",
    "p"."_key"
  FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
  WHERE
    "p"."_op" IN ('added', 'changed') AND "p"."_prior"
) AS "r"
WHERE
  "s"."_kh" = "r"."_kh" AND "s"."_key" = "r"."_key"
