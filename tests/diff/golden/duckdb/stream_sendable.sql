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
  "p"."h0",
  "p"."h1",
  "p"."h2",
  "p"."h3"
FROM "dinsync_scratch"."plan_people_to_crm" AS "p"
WHERE
  "p"."_op" IN ('added', 'changed')
