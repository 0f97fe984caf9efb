UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_fp" = CASE WHEN "p"."_op" = 'refresh' THEN "p"."_fp" ELSE "s"."_fp" END, "_pfp" = CASE WHEN "p"."_op" = 'refresh' THEN NULL ELSE "s"."_pfp" END, "_rkh" = "p"."_rkh"
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" IN ('refresh', 'rekey')
  AND "s"."_kh" = "p"."_kh"
  AND "s"."_key" = "p"."_key"
