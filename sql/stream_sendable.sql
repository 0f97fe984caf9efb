{% from "_macros.sql" import value_hashes %}
-- What the destination has to receive: added and changed rows, values and send flags.
{% if position %}-- Then what a commit records for the row (its position in the plan, key hash, fingerprint, the
-- hashes of the values sent, computed here from the values: the plan does not keep them): the
-- planner keeps it until the row is committed, so that a commit never reads the plan again.{% endif %}
SELECT
  {% if position %}p.{{ position }} AS _rn,{% endif %}
  p._key,
  p._op,
  {% for f in fields %}p.v{{ f.i }},{% endfor %}
  {% for f in fields %}p.x{{ f.i }}{{ "," if not loop.last }}{% endfor %}
  {% if position %}, p._kh, p._fp, p._rkh, p._prior{% if fields %}, {{ value_hashes(fields, "p") }}{% endif %}{% endif %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
