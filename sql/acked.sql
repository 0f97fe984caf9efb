-- The plan rows of the keys the destination answered for ({{ tables.ack }}, written by dinsync):
-- only added and changed rows; any other key is ignored. _replace: the snapshot may hold a row for
-- the key (it had one when the plan was built{% if not position %}, or this run committed the key
-- already{% endif %}).
{% if position %}
-- The planner found the position of most keys among the rows it streamed (_rn of the ack table,
-- by a hash of the key): the plan is read at those positions only (a range scan), checked against
-- the key's hash, and only positions are collected.
CREATE TABLE {{ acked }} AS
SELECT
  p.{{ position }} AS _rn,
  p._prior AS _replace,
  -- what a replacement needs from the plan, so that it reads nothing else from it
  CASE WHEN p._prior THEN p._kh END AS _kh,
  CASE WHEN p._prior THEN p._key END AS _key
FROM {{ plan }} AS p
JOIN (
  SELECT a._rn, DINSYNC_HASH(a._key) AS _kh FROM {{ tables.ack }} AS a WHERE a._rn IS NOT NULL
) AS a
  ON p.{{ position }} = a._rn AND p._kh = a._kh
WHERE p.{{ position }} BETWEEN {{ param("lo") }} AND {{ param("hi") }}
  AND p._op IN ('added', 'changed')
{% else %}
-- With the hashes of the values sent, which the snapshot records.
CREATE TABLE {{ acked }} AS
SELECT
  p._key,
  p._kh,
  p._rkh,
  p._fp,
  p._prior OR p._done AS _replace,
  {% for f in fields %}p.h{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
  AND p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
{% endif %}
