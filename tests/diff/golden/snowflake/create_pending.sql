CREATE TABLE IF NOT EXISTS "dinsync_state"."pend_people_to_crm" (
  "_key" VARCHAR NOT NULL,
  "_token" VARCHAR,
  "_stashed_at" TIMESTAMPNTZ,
  "_kh" BIGINT,
  "_fp" BIGINT,
  "_rkh" BIGINT,
  "f_a88b7dcd1a9e3e17" BIGINT,
  "f_b6ea992aab466831" BIGINT,
  "f_b205e07e594ce1db" BIGINT,
  "f_a720b844fa90091f" BIGINT
)
