-- The plan rows of the keys the destination acknowledged ({{ ack }}, written by dinsync):
-- only added and changed rows; any other key is ignored.
CREATE {{ scratch }} TABLE {{ acked }} AS
SELECT p._key, p._kh, p._fp, {% for f in fields joined by ", " %}p.h{{ f.i }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed') AND p._key IN (SELECT a._key FROM {{ ack }} AS a)
