-- The snapshot of one sync: what was last delivered, one row per matching key.
--   _key        the normalised matching key
--   _synced_at  when the row was last acknowledged
--   _kh         hash of _key (compared instead of the text)
--   _fp         fingerprint of the delivered row's values (see keys.sql): a quick "nothing changed"
--   f_...       per destination field, a 64-bit hash of the delivered value's text form; never NULL
--               once delivered, NULL = never delivered (a newly mapped field)
CREATE TABLE IF NOT EXISTS {{ snapshot }} (
  _key VARCHAR NOT NULL,
  _synced_at TIMESTAMP,
  _kh {{ hash_type }},
  _fp {{ hash_type }},
  {% for f in fields joined by ", " %}{{ f.snap }} {{ hash_type }}{% endfor %}
)
