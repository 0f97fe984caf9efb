{% from "_macros.sql" import all_rows with context %}
-- The first plan (empty snapshot) or a full refresh: every model row in one pass, no comparison.
-- Rows whose key is NULL or empty are kept as 'skipped' (counted); duplicated keys are found next
-- (plan_all_duplicates). Columns as in plan.sql; the hashes of the values are computed here, in
-- one parallel pass, so that commits only copy them. For a full refresh, _prior says whether the
-- snapshot holds the key (so that a commit replaces its row).
CREATE TABLE {{ plan }} AS
{{ all_rows(full_refresh) }}
