{% from "_macros.sql" import value_hashes %}
-- Acknowledged keys the planner did not stream (or whose streamed rows it let go): looked for in
-- the whole plan, next to the rows it took from what the stream carried.
INSERT INTO {{ acked }} (_rn, _key, _kh, _fp, _rkh, _replace, {% for f in fields %}h{{ f.i }}{{ ", " if not loop.last }}{% endfor %})
SELECT p.{{ position }}, p._key, p._kh, p._fp, p._rkh, p._prior, {{ value_hashes(fields, "p") }}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
  AND p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
  AND NOT p.{{ position }} IN (SELECT k._rn FROM {{ acked }} AS k)
