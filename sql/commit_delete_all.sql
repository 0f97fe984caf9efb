{% from "_macros.sql" import commit_rows with context %}
-- Commit, step 1 of 2, when some acknowledged key was already committed by this run: drop the
-- snapshot rows of all the acknowledged keys...
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT p._kh FROM {{ commit_rows() }})
  AND _key IN (SELECT p._key FROM {{ commit_rows() }})
