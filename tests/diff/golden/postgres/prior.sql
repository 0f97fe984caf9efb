CREATE TABLE "dinsync_state"."prior_people_to_crm" AS
SELECT
  "s".*
FROM "dinsync_state"."snap_people_to_crm" AS "s"
WHERE
  "s"."_kh" IN (
    SELECT
      COALESCE(HASHTEXTEXTENDED(CAST("c"."_key" AS TEXT) COLLATE "C", 0), 0)
    FROM "dinsync_state"."cur_people_to_crm" AS "c"
    WHERE
      NOT "c"."_key" IS NULL
    UNION ALL
    SELECT
      "c"."_kh"
    FROM "dinsync_state"."cand_people_to_crm" AS "c"
    WHERE
      "c"."_in_snap" AND NOT "c"."_in_seg"
  )
