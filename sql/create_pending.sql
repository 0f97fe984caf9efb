-- Records sent whose outcome had not arrived yet (a file import, an asynchronous bulk job): what a
-- commit would record for them, kept under the token that names the outcome until the platform's
-- answer is read, later in the run or by a later run (then acknowledged into the snapshot, parked,
-- or forgotten to be sent again). One row per key: a key sent again replaces its older row.
CREATE TABLE IF NOT EXISTS {{ pending }} (
  _key VARCHAR NOT NULL,
  _token VARCHAR,
  _stashed_at {{ timestamp_type }},
  _kh {{ hash_type }},
  _fp {{ hash_type }},
  _rkh {{ hash_type }},
  {% for f in fields %}{{ f.snap }} {{ hash_type }}{{ "," if not loop.last }}{% endfor %}
)
