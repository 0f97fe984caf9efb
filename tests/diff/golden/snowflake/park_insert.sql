INSERT INTO "dinsync_state"."snap_people_to_crm" (
  "_key",
  "_synced_at",
  "_kh",
  "_fp",
  "_rkh",
  "_pfp"
)
SELECT
  "k"."_key",
  NULL,
  "k"."_kh",
  NULL,
  "k"."_rkh",
  "k"."_fp"
FROM "dinsync_state"."acked_people_to_crm" AS "k"
WHERE
  NOT "k"."_replace"
