-- Before anything is sent: the snapshot rows of the keys this run will send (added or changed
-- rows the snapshot holds) forget what was delivered for them (fingerprint, parked fingerprint and
-- every field's hash). A write may be applied by the platform and never acknowledged (a reset
-- after the write, a run stopped or killed while a request was in flight): if the snapshot still
-- held the old values, a model that went back to them would be called unchanged and the
-- platform would keep the unacknowledged value. An acknowledged row's commit writes its new
-- values; any other row is sent again by the next run, whatever its values.
UPDATE {{ snapshot }} AS s
SET _fp = NULL, _pfp = NULL{% for f in fields %}, {{ f.snap }} = NULL{% endfor %}
FROM (SELECT p._kh, p._key FROM {{ plan }} AS p WHERE p._op IN ('added', 'changed') AND p._prior) AS r
WHERE s._kh = r._kh
  AND s._key = r._key
