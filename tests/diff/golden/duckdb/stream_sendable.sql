SELECT
  "p"."rowid" AS "_rn",
  "p"."_key",
  "p"."_op",
  "p"."v0",
  "p"."v1",
  "p"."v2",
  "p"."v3",
  "p"."x0",
  "p"."x1",
  "p"."x2",
  "p"."x3",
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
