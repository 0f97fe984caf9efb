INSERT INTO "dinsync_state"."snap_people_to_crm" (
  "_key",
  "_synced_at",
  "_kh",
  "_fp",
  "_rkh",
  "_pfp",
  "f_a88b7dcd1a9e3e17",
  "f_b6ea992aab466831",
  "f_b205e07e594ce1db",
  "f_a720b844fa90091f"
)
SELECT
  "p"."_key",
  CAST('__dinsync_param_now__' AS TIMESTAMPNTZ),
  "p"."_kh",
  CASE
    WHEN "p"."f_a88b7dcd1a9e3e17" IS NULL
    OR "p"."f_b6ea992aab466831" IS NULL
    OR "p"."f_b205e07e594ce1db" IS NULL
    OR "p"."f_a720b844fa90091f" IS NULL
    THEN NULL
    ELSE "p"."_fp"
  END,
  "p"."_rkh",
  NULL,
  "p"."f_a88b7dcd1a9e3e17",
  "p"."f_b6ea992aab466831",
  "p"."f_b205e07e594ce1db",
  "p"."f_a720b844fa90091f"
FROM "dinsync_state"."pend_people_to_crm" AS "p"
WHERE
  "p"."_key" IN (
    SELECT
      "a"."_key"
    FROM "dinsync_state"."ack_people_to_crm" AS "a"
  )
