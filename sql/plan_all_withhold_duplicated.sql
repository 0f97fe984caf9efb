-- ...and its rows are withheld: marked, not deleted (no reader of the plan takes 'withheld'
-- rows). On DuckDB a DELETE that ran out of memory cannot run again in the same process (its
-- rows stay in "Conflict on tuple deletion"), so the adapter's retry with a larger pool would
-- fail; an UPDATE can run again.
UPDATE {{ plan }}
SET _op = 'withheld'
WHERE _op = 'added'
  AND _kh IN (SELECT d._kh FROM {{ plan }} AS d WHERE d._op = 'duplicate')
  AND _key IN (SELECT d._key FROM {{ plan }} AS d WHERE d._op = 'duplicate')
