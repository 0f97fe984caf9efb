-- What the destination has to receive: added and changed rows, values and send flags.
{% if position %}-- _rn (the row's position in the plan) lets a commit find acknowledged rows without a scan.{% endif %}
SELECT
  {% if position %}p.{{ position }} AS _rn,{% endif %}
  p._key,
  p._op,
  {% for f in fields %}p.v{{ f.i }},{% endfor %}
  {% for f in fields %}p.x{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ plan }} AS p
WHERE p._op IN ('added', 'changed')
