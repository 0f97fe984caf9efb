CREATE TABLE IF NOT EXISTS "dinsync_state"."snap_people_to_crm" (
  "_key" TEXT NOT NULL,
  "_synced_at" TIMESTAMP,
  "_kh" UBIGINT,
  "_fp" UBIGINT,
  "_rkh" UBIGINT,
  "_pfp" UBIGINT,
  "f_a88b7dcd1a9e3e17" UBIGINT,
  "f_b6ea992aab466831" UBIGINT,
  "f_b205e07e594ce1db" UBIGINT,
  "f_a720b844fa90091f" UBIGINT
)
