-- Acknowledged keys whose position the planner did not know (not streamed by it, or committed
-- before): looked for in the whole plan.
INSERT INTO {{ acked }} (_rn, _replace, _kh, _key)
SELECT p.{{ position }}, p._prior, p._kh, p._key
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
  AND p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
  AND NOT p.{{ position }} IN (SELECT k._rn FROM {{ acked }} AS k)
