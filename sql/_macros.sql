{#- Shared fragments (not a statement). `a` is a table alias. -#}

{#- The fingerprint a model row must have to be skipped: the parked one if any (a row rejected for
    its content waits until it changes), else the delivered one. retry_rejected ignores parking. -#}
{% macro expected_fp(a, retry) -%}
{% if retry %}{{ a }}._fp{% else %}COALESCE({{ a }}._pfp, {{ a }}._fp){% endif %}
{%- endmacro %}

{#- Snapshot rows the segment is compared with: all of them (delivered or parked), or only the
    delivered ones when parked rows are retried. -#}
{% macro expected_rows(a, retry) -%}
{% if retry %}{{ a }}._synced_at IS NOT NULL{% else %}TRUE{% endif %}
{%- endmacro %}

{#- Raw key hash of a model row (alias m): NULL when the key is NULL or empty (as text). -#}
{% macro raw_key_hash(raw_key, key_column) -%}
CASE WHEN NULLIF({{ raw_key }}, '') IS NOT NULL THEN DINSYNC_HASH(m.{{ key_column }}) END
{%- endmacro %}

{% macro fingerprint(fields, a) -%}
DINSYNC_FINGERPRINT({% for f in fields %}{{ a }}.{{ f.col }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{#- The rows of the current commit (alias p): `acked`, a copy of their plan rows. which: "all",
    "replace" (rows whose snapshot row may exist) or "new" (the others). -#}
{% macro commit_rows(which="all") -%}
{{ acked }} AS p
{%- if which == "replace" %} WHERE p._replace{% elif which == "new" %} WHERE NOT p._replace{% endif %}
{%- endmacro %}

{#- Every model row as a plan row (columns as in plan.sql; see plan_all.sql): rows whose key is
    NULL or empty are 'skipped', every other row is 'added'. -#}
{% macro all_rows(full_refresh) -%}
SELECT
  k._key,
  CASE WHEN k._key IS NULL THEN 'skipped' ELSE 'added' END AS _op,
  {% for f in fields %}k.v{{ f.i }},{% endfor %}
  {% for f in fields %}TRUE AS x{{ f.i }},{% endfor %}
  {% for f in fields %}DINSYNC_HASH(k.v{{ f.i }}) AS h{{ f.i }},{% endfor %}
  CAST(1 AS BIGINT) AS _n,
  k._kh,
  k._rkh,
  k._fp,
  {% if full_refresh %}k._kh IN (SELECT s._kh FROM {{ snapshot }} AS s){% else %}FALSE{% endif %} AS _prior
FROM (
  SELECT
    j._key,
    CASE WHEN j._key IS NOT NULL THEN DINSYNC_HASH(j._key) END AS _kh,
    j._rkh,
    j._fp,
    {% for f in fields %}j.v{{ f.i }}{{ "," if not loop.last }}{% endfor %}
  FROM (
    SELECT
      {{ key_expr }} AS _key,
      {{ raw_key_hash(raw_key, key_column) }} AS _rkh,
      {{ fingerprint(fields, "m") }} AS _fp,
      {% for f in fields %}m.{{ f.col }} AS v{{ f.i }}{{ "," if not loop.last }}{% endfor %}
    FROM {{ model }} AS m
  ) AS j
) AS k
{%- endmacro %}

{#- The plan read by a statement (alias it p). A first plan that is not written (plan_first.sql,
    Capabilities.lazy_first_plan) is computed here from the model: its added rows (every keyed row
    but the duplicated keys'), then the rows the plan table holds. Their position is NULL (the
    planner numbers the rows it streams). -#}
{% macro plan_source(first) -%}
{% if first -%}
(
  SELECT CAST(NULL AS BIGINT) AS {{ position }}, a.*
  FROM (
{{ all_rows(False) | indent(4, true) }}
  ) AS a
  WHERE a._key IS NOT NULL
    AND a._key NOT IN (SELECT e._key FROM {{ plan }} AS e WHERE e._op = 'duplicate')
  UNION ALL
  SELECT NULL, e._key, e._op, {% for f in fields %}NULL, NULL, NULL, {% endfor %}e._n, e._kh, NULL, NULL, FALSE
  FROM {{ plan }} AS e
  WHERE e._op IN ('skipped', 'duplicate')
)
{%- else %}{{ plan }}{% endif %}
{%- endmacro %}
