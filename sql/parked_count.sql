-- Keys parked as rejected (waiting until their values change). `staying`: of those, the ones the
-- plan just built leaves parked: not those that left the segment (removed or forgotten by this
-- run), nor those whose values changed (sent again: added, changed) or changed back to the
-- delivered ones (refresh clears their parking), which the plan counts as such. `undelivered`: of
-- the staying ones, those never delivered (the plan counts them unchanged, yet the platform holds
-- nothing of theirs: not in max_changed_pct's base).
SELECT COUNT(*) AS parked
FROM {{ snapshot }} AS s
WHERE s._pfp IS NOT NULL
{%- if undelivered %}
  AND s._synced_at IS NULL
{%- endif %}
{%- if staying %}
  AND NOT (s._kh IN (SELECT p._kh FROM {{ plan }} AS p
                     WHERE p._op IN ('removed', 'forget', 'added', 'changed', 'refresh'))
           AND s._key IN (SELECT p._key FROM {{ plan }} AS p
                          WHERE p._op IN ('removed', 'forget', 'added', 'changed', 'refresh')))
{%- endif %}
