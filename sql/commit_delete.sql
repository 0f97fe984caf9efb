{% from "_macros.sql" import commit_rows with context %}
-- Commit, step 1 of 2 (one transaction): drop the snapshot rows of the acknowledged keys (only
-- keys the snapshot may hold are looked for)...
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT p._kh FROM {{ commit_rows("replace") }})
  AND _key IN (SELECT p._key FROM {{ commit_rows("replace") }})
