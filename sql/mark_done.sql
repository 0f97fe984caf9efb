-- The plan rows just committed: a later commit of the same keys replaces their snapshot rows.
-- (Warehouses with a row position keep track of committed positions in the planner instead.)
UPDATE {{ plan }}
SET _done = TRUE
WHERE _op IN ('added', 'changed')
  AND _key IN (SELECT k._key FROM {{ acked }} AS k)
