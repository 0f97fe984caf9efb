CREATE TABLE "dinsync_scratch_people_to_crm"."main"."prior_people_to_crm" AS
SELECT
  "s".*
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  "s"."_kh" IN (
    SELECT
      HASH(CAST("c"."_key" AS TEXT) COLLATE C)
    FROM "dinsync_scratch_people_to_crm"."main"."cur_people_to_crm" AS "c"
    WHERE
      NOT "c"."_key" IS NULL
    UNION ALL
    SELECT
      "c"."_kh"
    FROM "dinsync_scratch_people_to_crm"."main"."cand_people_to_crm" AS "c"
    WHERE
      "c"."_in_snap" AND NOT "c"."_in_seg"
  )
