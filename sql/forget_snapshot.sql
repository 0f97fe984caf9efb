-- A sync moved to another destination (or service): its snapshot says what the previous one holds
-- (delivered and parked rows), nothing of the new one. Forgotten before anything is sent, and the
-- new destination recorded right after: every row is then new to the sync (sent as added), and a
-- run stopped or killed midway leaves the rows the new destination acknowledged, so the next run
-- sends the others, not every row again. (WHERE TRUE: BigQuery refuses a DELETE without WHERE.)
DELETE FROM {{ snapshot }} WHERE TRUE
