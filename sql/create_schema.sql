-- The schema that holds dinsync's state: snapshots, plans and scratch tables.
CREATE SCHEMA IF NOT EXISTS {{ schema }}
