-- The plan rows of the keys the destination answered for ({{ tables.ack }}, written by dinsync):
-- only added and changed rows; any other key is ignored. With the hashes of the values sent, which
-- the snapshot records. _replace: the snapshot may hold a row for the key (it had one when the
-- plan was built, or this run committed the key already{% if position %}: the planner keeps
-- track of that by position{% endif %}).
{% if window %}-- Only plan rows in a range of positions (recently streamed rows) are looked at.{% endif %}
CREATE TABLE {{ acked }} AS
SELECT
  {% if position %}p.{{ position }} AS _rn,{% endif %}
  p._key,
  p._kh,
  p._rkh,
  p._fp,
  {% if position %}p._prior{% else %}p._prior OR p._done{% endif %} AS _replace,
  {% for f in fields %}p.h{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
  {% if window %}AND p.{{ position }} BETWEEN {{ param("lo") }} AND {{ param("hi") }}{% endif %}
  AND p._key IN (SELECT a._key FROM {{ tables.ack }} AS a)
