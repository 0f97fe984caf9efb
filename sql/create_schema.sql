-- The schema that holds dinsync's state: snapshots (and plans, where no scratch database exists).
CREATE SCHEMA IF NOT EXISTS {{ schema }}
