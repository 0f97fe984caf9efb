INSERT INTO "dinsync_state"."pend_people_to_crm" (
  "_key",
  "_token",
  "_stashed_at",
  "_kh",
  "_fp",
  "_rkh",
  "f_a88b7dcd1a9e3e17",
  "f_b6ea992aab466831",
  "f_b205e07e594ce1db",
  "f_a720b844fa90091f"
)
SELECT
  "p"."_key",
  NULL,
  CAST('__dinsync_param_now__' AS TIMESTAMPNTZ),
  "p"."_kh",
  "p"."_fp",
  "p"."_rkh",
  "p"."h0",
  "p"."h1",
  "p"."h2",
  "p"."h3"
FROM "dinsync_state"."acked_people_to_crm" AS "p"
