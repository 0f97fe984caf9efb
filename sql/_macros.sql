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

{#- The hash of each mapped value's text form (h0, h1, ..), from the values v0, v1, .. of alias `a`:
    what the plan compares with the snapshot (plan.sql) and what a commit records (stream_sendable,
    acked, acked_rest), so that both are the same expression. A column the warehouse names (f.exact)
    is hashed in its exact form, as in the fingerprint: else a change the fingerprint sees but the
    value's hash does not is planned as a `refresh`, and never sent. -#}
{% macro value_hashes(fields, a) -%}
{% for f in fields %}DINSYNC_HASH({{ hashed(f, a ~ ".v" ~ f.i) }}) AS h{{ f.i }}{{ ", " if not loop.last }}{% endfor %}
{%- endmacro %}

{#- A value `x` of field f as its hashes read it: in its exact form (f.exact), and in the form the
    warehouse names (f.stable: a text written in the session's time zone, DuckDB's TIMESTAMPTZ,
    as a UTC session writes it), else as it is. -#}
{% macro hashed(f, x) -%}
{% set v %}{% if f.stable %}{{ f.stable | replace("@X@", x) }}{% else %}{{ x }}{% endif %}{% endset %}
{%- if f.exact %}DINSYNC_EXACT({{ v }}){% else %}{{ v }}{% endif %}
{%- endmacro %}

{#- Raw key hash of a model row (alias m): NULL when the key is NULL or empty (as text). -#}
{% macro raw_key_hash(raw_key, key_column) -%}
CASE WHEN NULLIF({{ raw_key }}, '') IS NOT NULL THEN DINSYNC_HASH(m.{{ key_column }}) END
{%- endmacro %}

{#- The query of the model's rows as (_rkh: raw key hash, _fp: fingerprint; without _fp when not
    `fp`): what seg.sql keeps, or seg_rows() computes in place. -#}
{% macro model_hashes(fp=True) -%}
SELECT {{ raw_key_hash(raw_key, key_column) }} AS _rkh{% if fp %}, {{ fingerprint(fields, "m") }} AS _fp{% endif %}
FROM {{ model }} AS m
{%- endmacro %}

{#- The model's rows as (_rkh, _fp), for a FROM clause: the scratch table that the plan's first
    statement filled (seg.sql) where the warehouse keeps one (Capabilities.segment_hashes), else
    model_hashes() in place. -#}
{% macro seg_rows(fp=True) -%}
{% if segment_hashes %}{{ seg }}{% else %}({{ model_hashes(fp) }}){% endif %}
{%- endmacro %}

{#- What the own hash of value f of alias `a` leaves out (f.shape), NULL where it leaves out nothing. -#}
{% macro shape(f, a) -%}
{{ f.shape | replace("@X@", a ~ "." ~ f.col) }}
{%- endmacro %}

{#- The row's fingerprint; a column the warehouse names (f.exact) is hashed in a form that tells
    apart every two values of different text forms (DINSYNC_EXACT). What a value's own hash leaves
    out (f.shape: an array's dimensions), where there is any, is hashed along: the other rows keep
    the fingerprint they had. -#}
{% macro fingerprint(fields, a) -%}
{%- set values -%}
{% for f in fields %}{% if f.exact %}{{ hashed(f, a ~ "." ~ f.col) }}{% else %}{{ a }}.{{ f.col }}{% endif %}{{ ", " if not loop.last }}{% endfor %}
{%- endset -%}
{%- set shaped = fields | selectattr("shape") | list -%}
{%- if shaped -%}
CASE WHEN {% for f in shaped %}{{ shape(f, a) }} IS NULL{{ " AND " if not loop.last }}{% endfor %}
THEN DINSYNC_FINGERPRINT({{ values }})
ELSE DINSYNC_FINGERPRINT({{ values }}{% for f in shaped %}, {{ shape(f, a) }}{% endfor %}) END
{%- else -%}
DINSYNC_FINGERPRINT({{ values }})
{%- endif %}
{%- endmacro %}

{#- The rows of the current commit (alias p): `acked`, a copy of their plan rows. which: "all",
    "replace" (rows whose snapshot row may exist) or "new" (the others). -#}
{% macro commit_rows(which="all") -%}
{{ acked }} AS p
{%- if which == "replace" %} WHERE p._replace{% elif which == "new" %} WHERE NOT p._replace{% endif %}
{%- endmacro %}

{#- In a statement run in parts (in_parts, see commit_removed.sql): the rows (alias a) of part
    param("part") of param("parts"), by key hash. -#}
{% macro part_of(a) -%}
{% if in_parts %} AND ABS(MOD({{ a }}._kh, {{ param("parts") }})) = {{ param("part") }}{% endif %}
{%- endmacro %}
