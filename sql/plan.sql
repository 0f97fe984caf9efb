-- plan: what this run has to do, one row per key (unchanged keys do not appear).
--   added      key not in the snapshot: every mapped field is sent (x = TRUE)
--   changed    some mapped field's hash differs from the snapshot, or was never delivered;
--              x{i} says whether field i must be sent
--   removed    key in the snapshot but no longer in the segment (v, h, x are NULL)
--   duplicate  key found on more than one row of the segment: all its rows are withheld
--              (v, h, x are NULL; _n = number of rows)
-- Columns: _key, _op, then per mapped field i (mapping order) v{i} (value), h{i} (hash of its
-- text form), x{i} (send it?); then _n (segment rows with this key), _kh (hash of the key) and
-- _fp (fingerprint of the row, see keys.sql), which the commit records in the snapshot.
-- Only the candidates' rows (candidates.sql) are read from the model, now with their values,
-- and compared field by field with their snapshot rows. For a full refresh the snapshot is
-- ignored ({{ compare_snapshot }} is FALSE) and every key is added.
CREATE TABLE {{ plan }} AS
WITH cur AS (
  -- the candidates' rows with their values (rows whose key is NULL or empty are dropped below)
  SELECT
    {{ key_expr }} AS _key,
    {% for f in fields joined by ", " %}m.{{ f.col }} AS v{{ f.i }}, DINSYNC_HASH(m.{{ f.col }}) AS h{{ f.i }}{% endfor %},
    DINSYNC_FINGERPRINT({% for f in fields joined by ", " %}m.{{ f.col }}{% endfor %}) AS _fp
  FROM {{ model }} AS m
  WHERE DINSYNC_HASH(m.{{ key_column }}) IN (SELECT c._rkh FROM {{ candidates }} AS c)
),
counts AS MATERIALIZED (
  -- the same rows, keys only, counted per exact key: a second, narrow read of the model in the
  -- same statement (one consistent view), so that the wide rows above are streamed, not held.
  -- (_keyed = 0 marks the group of NULL keys; tested instead of `_key IS NOT NULL`, which an
  -- optimizer would push down to normalise the key of every model row)
  SELECT {{ key_expr }} AS _key, COUNT(*) AS _n, COUNT({{ key_expr }}) AS _keyed
  FROM {{ model }} AS m
  WHERE DINSYNC_HASH(m.{{ key_column }}) IN (SELECT c._rkh FROM {{ candidates }} AS c)
  GROUP BY {{ key_expr }}
),
prior AS (
  -- the candidates' snapshot rows
  SELECT s.*
  FROM {{ snapshot }} AS s
  WHERE {{ compare_snapshot }} AND s._kh IN (SELECT c._kh FROM {{ candidates }} AS c)
),
changes AS (
  SELECT
    c.*,
    p._key IS NULL AS _new,
    {% for f in fields joined by ", " %}(p._key IS NULL OR p.{{ f.snap }} IS NULL OR p.{{ f.snap }} <> c.h{{ f.i }}) AS x{{ f.i }}{% endfor %}
  FROM cur AS c
  LEFT JOIN prior AS p
    ON p._key = c._key
  WHERE NOT EXISTS (SELECT 1 FROM counts AS n WHERE n._key = c._key AND n._n > 1)
    -- drops a NULL key; written with p so that it is checked here, after the join, and not
    -- pushed down to normalise the key of every model row
    AND COALESCE(c._key, p._key) IS NOT NULL
)
SELECT
  ch._key,
  CASE WHEN ch._new THEN 'added' ELSE 'changed' END AS _op,
  {% for f in fields joined by ", " %}ch.v{{ f.i }}, ch.h{{ f.i }}, ch.x{{ f.i }}{% endfor %},
  CAST(1 AS BIGINT) AS _n,
  DINSYNC_HASH(ch._key) AS _kh,
  ch._fp
FROM changes AS ch
WHERE ch._new OR {% for f in fields joined by " OR " %}ch.x{{ f.i }}{% endfor %}
UNION ALL
SELECT n._key, 'duplicate', {% for f in fields joined by ", " %}NULL, NULL, NULL{% endfor %}, n._n, NULL, NULL
FROM counts AS n
WHERE n._n > 1 AND n._keyed > 0
UNION ALL
SELECT s._key, 'removed', {% for f in fields joined by ", " %}NULL, NULL, NULL{% endfor %}, CAST(0 AS BIGINT), s._kh, NULL
FROM {{ snapshot }} AS s
WHERE {{ compare_snapshot }}
  AND s._kh IN (SELECT c._kh FROM {{ candidates }} AS c)
  AND NOT EXISTS (SELECT 1 FROM counts AS n WHERE n._key = s._key)
