INSERT INTO "dinsync_state"."snap_people_to_crm" (
  "_key",
  "_synced_at",
  "_kh",
  "_fp",
  "_rkh",
  "_pfp"
)
SELECT
  "p"."_key",
  NULL,
  "p"."_kh",
  NULL,
  "p"."_rkh",
  "p"."_fp"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
WHERE
  "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
  AND "p"."rowid" IN (
    SELECT
      "k"."_rn"
    FROM "dinsync_scratch"."acked_people_to_crm" AS "k"
    WHERE
      NOT "k"."_replace"
  )
