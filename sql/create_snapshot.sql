-- The snapshot of one sync: what was last delivered (and what was parked), one row per key.
--   _key        the normalised matching key
--   _synced_at  when the row was last acknowledged (UTC, the state tables' zone-less type); NULL:
--               never delivered, only parked
--   _kh         hash of _key (compared instead of the text)
--   _fp         fingerprint of the delivered row's values (see _macros.sql): a quick "unchanged"
--   _rkh        hash of the raw key text of the model row last seen for this key (before
--               normalisation): the no-op check compares (_rkh, fingerprint) without normalising
--   _pfp        parked: fingerprint of the values the destination rejected; the row is not
--               planned again until its values change (NULL: not parked)
--   f_...       per destination field, a 64-bit hash of the delivered value's text form; NULL =
--               never delivered (a newly mapped field, or a row that was only parked)
CREATE TABLE IF NOT EXISTS {{ snapshot }} (
  _key VARCHAR NOT NULL,
  _synced_at {{ timestamp_type }},
  _kh {{ hash_type }},
  _fp {{ hash_type }},
  _rkh {{ hash_type }},
  _pfp {{ hash_type }},
  {% for f in fields %}{{ f.snap }} {{ hash_type }}{{ "," if not loop.last }}{% endfor %}
)
