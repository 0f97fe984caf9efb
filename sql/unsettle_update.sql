{% from "_macros.sql" import commit_rows with context %}
-- Keys whose write failed (retries exhausted: a reset, a timeout, a 5xx, an answer that was not
-- the platform's) may still have been applied: what the destination holds is unknown. The
-- snapshot forgets what it delivered and parked for them (fingerprint, parked fingerprint and
-- every field's hash), so the next run sends every field again, even when the model went back to
-- the values delivered before (which a snapshot that still held them would call unchanged).
-- Only keys the snapshot holds; the others are sent again anyway.
UPDATE {{ snapshot }} AS s
SET _fp = NULL, _pfp = NULL{% for f in fields %}, {{ f.snap }} = NULL{% endfor %}
FROM (SELECT p._kh, p._key FROM {{ commit_rows("replace") }}) AS r
WHERE s._kh = r._kh
  AND s._key = r._key
