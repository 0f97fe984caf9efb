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
JOIN "dinsync_scratch"."acked_people_to_crm" AS "k"
  ON "p"."rowid" = "k"."_rn"
WHERE
  "p"."rowid" BETWEEN 9110000000000000001 AND 9110000000000000002
  AND NOT "k"."_replace"
