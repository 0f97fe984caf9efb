-- Before anything is sent: the snapshot rows of the keys this run will send (added or changed
-- rows the snapshot holds) forget what was delivered for them (fingerprint, parked fingerprint and
-- every field's hash). A write may be applied by the platform and never acknowledged (a reset
-- after the write, a run stopped or killed while a request was in flight): if the snapshot still
-- held the old values, a model that went back to them would be called unchanged and the
-- platform would keep the unacknowledged value. An acknowledged row's commit writes its new
-- values; any other row is sent again by the next run, whatever its values.
-- Step 1 of 3: what is kept of those rows. Then, in one transaction, unsettle_delete and
-- unsettle_insert (on DuckDB, an UPDATE of 20k rows of 1M spread over every row group took
-- 0.2 s, the commit rewriting each updated column; the delete and insert 0.04 s, as commits do).
-- from_prior: the everyday plan's copy of its candidates' snapshot rows (prior.sql), which holds
-- every row this reads (a plan row's _prior says it joined one) and is unchanged since (nothing
-- writes the snapshot between the plan and the sending but refresh_snapshot, whose keys are not
-- sent): reading it instead of the snapshot took ~10 instead of 21-35 ms in a 1M-row sync's 2%
-- churn run.
-- refresh: a full refresh's rows (all sent as added) forget that they were delivered too
-- (_synced_at NULL): one it does not get acknowledged (not found in update mode, failed, cut off
-- by a stop) is then new to the sync, sent whole and, in update mode, looked up again by the next
-- run; kept delivered, it was trusted to exist and a user deleted in the platform created again.
CREATE TABLE {{ unsettle }} AS
SELECT s._key, {% if refresh %}NULLIF(s._synced_at, s._synced_at) AS _synced_at{% else %}s._synced_at{% endif %},
  s._kh, s._rkh
FROM {% if from_prior %}{{ prior }}{% else %}{{ snapshot }}{% endif %} AS s
WHERE s._kh IN (SELECT p._kh FROM {{ plan }} AS p WHERE p._op IN ('added', 'changed') AND p._prior)
  AND s._key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op IN ('added', 'changed') AND p._prior)
