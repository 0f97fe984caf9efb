{% from "_macros.sql" import plan_source with context %}
-- Every row of the plan (tests, debugging): the plan table, or what a first plan that is not
-- written computes (plan_first.sql).
SELECT p.*
FROM {{ plan_source(first) }} AS p
