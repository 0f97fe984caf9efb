UPDATE "dinsync_state"."snap_people_to_crm" AS "s" SET "_pfp" = "r"."_fp", "_rkh" = "r"."_rkh"
FROM (
  SELECT
    "p"."_kh",
    "p"."_key",
    "p"."_fp",
    "p"."_rkh"
  FROM "dinsync_state"."pend_people_to_crm" AS "p"
  WHERE
    "p"."_key" IN (
      SELECT
        "a"."_key"
      FROM "dinsync_commits"."main"."ack_people_to_crm" AS "a"
    )
) AS "r"
WHERE
  "s"."_kh" = "r"."_kh" AND "s"."_key" = "r"."_key"
