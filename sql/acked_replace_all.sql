-- Some of these keys were committed by this run already: every snapshot row may need replacing.
{% if position %}
UPDATE {{ acked }} AS k
SET _replace = TRUE, _kh = p._kh, _key = p._key
FROM {{ plan }} AS p
WHERE p.{{ position }} = k._rn
{% else %}
UPDATE {{ acked }} SET _replace = TRUE
{% endif %}
