{% from "_macros.sql" import commit_rows with context %}
-- Stash, step 2 of 2: the plan rows of the keys whose outcome is pending, as a commit would record
-- them (the token is set next, by the planner, as a bound value).
INSERT INTO {{ pending }} (_key, _token, _stashed_at, _kh, _fp, _rkh, {% for f in fields %}{{ f.snap }}{{ ", " if not loop.last }}{% endfor %})
SELECT
  p._key,
  NULL,
  CAST({{ param("now") }} AS {{ timestamp_type }}),
  p._kh,
  p._fp,
  p._rkh,
  {% for f in fields %}p.h{{ f.i }}{{ "," if not loop.last }}{% endfor %}
FROM {{ commit_rows() }}
