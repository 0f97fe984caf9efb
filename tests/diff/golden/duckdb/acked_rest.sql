INSERT INTO "dinsync_commits"."main"."acked_people_to_crm" (
  "_rn",
  "_key",
  "_kh",
  "_fp",
  "_rkh",
  "_replace",
  "h0",
  "h1",
  "h2",
  "h3"
)
SELECT
  "p"."rowid",
  "p"."_key",
  "p"."_kh",
  "p"."_fp",
  "p"."_rkh",
  "p"."_prior",
  HASH(CAST("p"."v0" AS TEXT) COLLATE C) AS "h0",
  HASH(CAST("p"."v1" AS TEXT) COLLATE C) AS "h1",
  HASH(CAST("p"."v2" AS TEXT) COLLATE C) AS "h2",
  HASH(CAST("p"."v3" AS TEXT) COLLATE C) AS "h3"
FROM "dinsync_scratch_people_to_crm"."main"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" IN ('added', 'changed')
  AND "p"."_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_commits"."main"."ack_people_to_crm" AS "a"
  )
  AND NOT "p"."rowid" IN (
    SELECT
      "k"."_rn"
    FROM "dinsync_commits"."main"."acked_people_to_crm" AS "k"
  )
