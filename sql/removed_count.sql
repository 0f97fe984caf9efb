{% from "_macros.sql" import part_of with context %}
-- Delivered keys that left the segment (in_parts: of one part, see commit_removed.sql).
SELECT COUNT(*) AS removed
FROM {{ snapshot }} AS s
WHERE s._kh IN (SELECT p._kh FROM {{ plan }} AS p WHERE p._op = 'removed'{{ part_of("p") }})
  AND s._key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op = 'removed'{{ part_of("p") }})
