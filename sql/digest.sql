{% from "_macros.sql" import expected_fp, expected_rows, seg_rows with context %}
-- The one pass over every model row of an everyday plan (or over what seg.sql kept of it), and one
-- over the snapshot, as a single row: counts and an order-independent digest of (raw key hash, fingerprint) on either side. When
-- they agree (and every snapshot row has a raw key hash and a fingerprint), nothing changed and
-- the plan is done; else every row is a candidate (cand_all). Keys are not normalised here.
-- A parked row is expected with its parked fingerprint, so it costs nothing until it changes.
-- Cheaper than per-bucket digests (buckets.sql): no grouping; those are computed only when a raw
-- key occurs more than once (see the planner).
WITH seg AS (
  SELECT
    COUNT(*) AS _n,
    COUNT(r._rkh) AS _keyed,
    DINSYNC_DIGEST(CASE WHEN r._rkh IS NOT NULL THEN DINSYNC_ROWHASH(r._rkh, r._fp) END) AS _d
  FROM {{ seg_rows() }} AS r
),
snap AS (
  SELECT
    COUNT(*) AS _n,
    COUNT(s._rkh) AS _n_rkh,
    COUNT({{ expected_fp("s", retry) }}) AS _n_fp,
    DINSYNC_DIGEST(CASE WHEN s._rkh IS NOT NULL THEN DINSYNC_ROWHASH(s._rkh, {{ expected_fp("s", retry) }}) END) AS _d
  FROM {{ snapshot }} AS s
  WHERE {{ expected_rows("s", retry) }}
){% if retry %},
waiting AS (
  -- retrying parked rows: the snapshot's rows never delivered (parked) are not compared above, and
  -- those that left the model must leave the snapshot (plan.sql): the plan looks for them
  SELECT COUNT(*) AS _n
  FROM {{ snapshot }} AS s
  WHERE s._synced_at IS NULL
){% endif %}
SELECT
  a._n AS segment_rows,
  a._n - a._keyed AS null_keys,
  a._keyed AS keyed_rows,
  b._n AS snapshot_rows,
  CASE
    WHEN a._keyed <> b._n OR b._n_rkh <> b._n OR b._n_fp <> b._n THEN 1
    {% if retry %}WHEN w._n > 0 THEN 1{% endif %}
    WHEN a._keyed = 0 THEN 0
    WHEN a._d <> b._d THEN 1
    ELSE 0
  END AS dirty
FROM seg AS a
CROSS JOIN snap AS b{% if retry %}
CROSS JOIN waiting AS w{% endif %}
