{% from "_macros.sql" import expected_fp, expected_rows, value_hashes %}
-- plan: what this run has to do, one row per key (unchanged keys do not appear).
--   added      key never delivered: every mapped field is sent (x = TRUE)
--   changed    some mapped field's hash differs from the delivered one, or was never delivered;
--              x{i} says whether field i must be sent
--   removed    key delivered but no longer in the segment (v and x are NULL)
--   duplicate  key found on more than one row of the segment: all its rows are withheld
--              (v and x are NULL; _n = number of rows)
--   skipped    model rows whose key is NULL or empty after normalisation (one row, _n of them)
--   withheld   a first plan's rows of a duplicated key (plan_all_withhold_duplicated); never read
-- and, for the snapshot only (never sent):
--   refresh    values equal to the delivered ones, fingerprint not (a type or a parked value
--              that changed back): the snapshot takes the new fingerprint, parking is cleared
--   rekey      values as expected, raw key text not (same key after normalisation)
--   forget     a parked key that was never delivered left the segment
-- Columns: _key, _op, v{i} (value of field i, mapping order), x{i} (send it?), _n, _kh (hash of
-- the key), _rkh (hash of the raw key), _fp (fingerprint), _prior (the snapshot holds the key).
-- The hash of each value's text form, which a commit records, is not kept: whoever reads rows
-- to commit them computes it from v{i} (stream_sendable, acked, acked_rest), the same
-- DINSYNC_HASH that the `hashed` step below compares. Kept, those 8 bytes a field made a first
-- plan a third larger (at 10M rows x 10 fields, 2.3 instead of 1.6 GB spilled by DuckDB, and
-- written again as the stream read it back).
-- Built from the candidates (cand.sql, cur.sql, prior.sql) only.
CREATE TABLE {{ plan }} AS
WITH counts AS (
  SELECT c._key, COUNT(*) AS _n
  FROM {{ cur }} AS c
  WHERE c._key IS NOT NULL
  GROUP BY c._key
),
keyed AS (
  -- rows per key: the candidates', plus the model row behind the snapshot row when it is not a
  -- candidate (same key, another raw spelling, unchanged): then the key is duplicated too
  SELECT
    n._key,
    n._n + CASE
      WHEN p._rkh IS NOT NULL AND {{ expected_rows("p", retry) }} AND r._rkh IS NULL THEN 1
      ELSE 0
    END AS _n
  FROM counts AS n
  LEFT JOIN {{ prior }} AS p
    ON p._key = n._key
  -- a join, not `NOT IN (SELECT ...)`: PostgreSQL runs that once per row when the candidates
  -- outgrow work_mem (tests/warehouses/test_pg_plan_shapes.py)
  LEFT JOIN (SELECT DISTINCT c._rkh FROM {{ cand }} AS c WHERE c._rkh IS NOT NULL) AS r
    ON r._rkh = p._rkh
),
hashed AS (
  SELECT c.*, {{ value_hashes(fields, "c") }}
  FROM {{ cur }} AS c
),
rows AS (
  SELECT
    c.*,
    p._key IS NOT NULL AS _prior,
    p._synced_at IS NOT NULL AS _delivered,
    p._rkh AS _prior_rkh,
    {{ expected_fp("p", retry) }} AS _efp,
    {% for f in fields %}
    (p._synced_at IS NULL OR p.{{ f.snap }} IS NULL OR p.{{ f.snap }} <> c.h{{ f.i }}) AS x{{ f.i }}{{ "," if not loop.last }}
    {% endfor %}
  FROM hashed AS c
  JOIN keyed AS k
    ON k._key = c._key AND k._n = 1
  LEFT JOIN {{ prior }} AS p
    ON p._key = c._key
),
ops AS (
  SELECT
    r.*,
    CASE
      WHEN r._efp IS NOT NULL AND r._fp = r._efp THEN 'rekey'
      WHEN NOT r._delivered THEN 'added'
      WHEN {% for f in fields %}r.x{{ f.i }}{{ " OR " if not loop.last }}{% endfor %} THEN 'changed'
      ELSE 'refresh'
    END AS _op
  FROM rows AS r
  WHERE r._efp IS NULL OR r._fp <> r._efp OR r._prior_rkh IS NULL OR r._rkh <> r._prior_rkh
)
SELECT
  o._key,
  o._op,
  {% for f in fields %}CASE WHEN o._op IN ('added', 'changed') THEN o.v{{ f.i }} END AS v{{ f.i }},{% endfor %}
  {% for f in fields %}CASE WHEN o._op IN ('added', 'changed') THEN o._op = 'added' OR o.x{{ f.i }} END AS x{{ f.i }},{% endfor %}
  CAST(1 AS BIGINT) AS _n,
  DINSYNC_HASH(o._key) AS _kh,
  o._rkh,
  o._fp,
  o._prior
FROM ops AS o
UNION ALL
SELECT k._key, 'duplicate', {% for f in fields %}NULL, NULL, {% endfor %}k._n, DINSYNC_HASH(k._key), NULL, NULL, NULL
FROM keyed AS k
WHERE k._n > 1
UNION ALL
SELECT NULL, 'skipped', {% for f in fields %}NULL, NULL, {% endfor %}COUNT(*), NULL, NULL, NULL, NULL
FROM {{ cur }} AS c
WHERE c._key IS NULL
HAVING COUNT(*) > 0
UNION ALL
SELECT
  p._key,
  CASE WHEN p._synced_at IS NOT NULL THEN 'removed' ELSE 'forget' END,
  {% for f in fields %}NULL, NULL, {% endfor %}CAST(0 AS BIGINT), p._kh, p._rkh, NULL, TRUE
FROM {{ prior }} AS p
WHERE NOT EXISTS (SELECT 1 FROM counts AS n WHERE n._key = p._key)
  AND (p._synced_at IS NOT NULL OR p._rkh IS NULL
       OR p._rkh IN (SELECT c._rkh FROM {{ cand }} AS c WHERE c._in_snap AND NOT c._in_seg))
{%- if retry %}
UNION ALL
-- retrying parked rows, which the candidates leave out of the snapshot's side (cand.sql): those
-- never delivered whose key no model row holds (a parked key in the model is a candidate) left it
SELECT s._key, 'forget', {% for f in fields %}NULL, NULL, {% endfor %}CAST(0 AS BIGINT), s._kh, s._rkh, NULL, TRUE
FROM {{ snapshot }} AS s
WHERE s._synced_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM counts AS n WHERE n._key = s._key)
{%- endif %}
