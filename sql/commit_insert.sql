{% from "_macros.sql" import commit_rows with context %}
-- Commit, step 2 of 2: ...and record what was delivered: the hashes of the values sent (computed
-- when the plan was built), the fingerprint, no parking.
INSERT INTO {{ snapshot }} (_key, _synced_at, _kh, _fp, _rkh, _pfp, {% for f in fields %}{{ f.snap }}{{ ", " if not loop.last }}{% endfor %})
SELECT
  p._key,
  CAST({{ param("now") }} AS {{ timestamp_type }}),
  p._kh,
  p._fp,
  p._rkh,
  NULL,
  {% for f in fields %}p.h{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ commit_rows() }}
