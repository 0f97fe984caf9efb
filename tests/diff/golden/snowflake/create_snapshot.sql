CREATE TABLE IF NOT EXISTS "dinsync_state"."snap_people_to_crm" (
  "_key" VARCHAR NOT NULL,
  "_synced_at" TIMESTAMPNTZ,
  "_kh" BIGINT,
  "_fp" BIGINT,
  "_rkh" BIGINT,
  "_pfp" BIGINT,
  "f_a88b7dcd1a9e3e17" BIGINT,
  "f_b6ea992aab466831" BIGINT,
  "f_b205e07e594ce1db" BIGINT,
  "f_a720b844fa90091f" BIGINT
)
