{% from "_macros.sql" import value_hashes %}
-- The plan rows of the keys the destination answered for ({{ tables.ack }}, written by dinsync):
-- only added and changed rows; any other key is ignored. With the hashes of the values sent
-- (computed from them: the plan keeps the values, not their hashes), which the snapshot records.
-- _replace: the snapshot may hold a row for the key (it had one when the
-- plan was built{% if not position %}, or this run may have committed the key already: _again,
-- from the planner's filter of committed keys{% endif %}).
{% if position %}
-- (Rows the planner streamed are written to this table from what the stream carried; only keys
-- it did not stream are looked for here, see acked_rest.)
{% endif %}
CREATE TABLE {{ acked }} AS
SELECT
  {% if position %}p.{{ position }} AS _rn,{% endif %}
  p._key,
  p._kh,
  p._fp,
  p._rkh,
  {% if position %}p._prior{% else %}p._prior OR a._again = 1{% endif %} AS _replace,
  {{ value_hashes(fields, "p") }}
FROM {{ plan }} AS p
{% if position %}
WHERE p._op IN ('added', 'changed')
  AND p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
{% else %}
-- (a join: `x IN (SELECT ..)` in the select list is a SubPlan to PostgreSQL, run once per row when
-- the keys outgrow work_mem; the keys are grouped, one row each, as the commit may repeat a key)
JOIN (
  SELECT a._key, MAX(CASE WHEN a._again THEN 1 ELSE 0 END) AS _again
  FROM {{ tables.ack }} AS a
  GROUP BY a._key
) AS a
  ON a._key = p._key
WHERE p._op IN ('added', 'changed')
{% endif %}
