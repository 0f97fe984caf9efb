UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_pfp" = "r"."_fp", "_rkh" = "r"."_rkh"
FROM (
  SELECT
    "p"."_kh",
    "p"."_key",
    "p"."_fp",
    "p"."_rkh"
  FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
  WHERE
    "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
    AND "p"."rowid" IN (
      SELECT
        "k"."_rn"
      FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
      WHERE
        "k"."_replace"
    )
) AS "r"
WHERE
  "s"."_kh" = "r"."_kh" AND "s"."_key" = "r"."_key"
