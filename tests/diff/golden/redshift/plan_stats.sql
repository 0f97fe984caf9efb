SELECT
  (
    SELECT
      COUNT(*)
    FROM "dinsync_state"."keys_people_to_crm"
  ) AS "segment_rows",
  (
    SELECT
      COUNT(*)
    FROM "dinsync_state"."keys_people_to_crm" AS "k"
    WHERE
      "k"."_kh" IS NULL
  ) AS "null_keys",
  (
    SELECT
      COUNT("c"."_rkh")
    FROM "dinsync_state"."cand_people_to_crm" AS "c"
  ) AS "candidate_rows",
  COUNT(CASE WHEN "p"."_op" = 'duplicate' THEN 1 END) AS "duplicate_keys",
  COALESCE(SUM(CASE WHEN "p"."_op" = 'duplicate' THEN "p"."_n" END), 0) AS "duplicate_rows",
  COUNT(CASE WHEN "p"."_op" = 'added' THEN 1 END) AS "added",
  COUNT(CASE WHEN "p"."_op" = 'changed' THEN 1 END) AS "changed",
  COUNT(CASE WHEN "p"."_op" = 'removed' THEN 1 END) AS "removed"
FROM "dinsync_state"."plan_people_to_crm" AS "p"
