{% from "_macros.sql" import part_of with context %}
-- Keys that left the segment leave the snapshot (they come back as added if they re-enter), and
-- so do parked keys that were never delivered; in_parts: those of one part (by key hash) of
-- param("parts"), when there are too many for one transaction (Capabilities.delete_part_rows).
DELETE FROM {{ snapshot }}
WHERE _kh IN (SELECT p._kh FROM {{ plan }} AS p WHERE p._op IN ('removed', 'forget'){{ part_of("p") }})
  AND _key IN (SELECT p._key FROM {{ plan }} AS p WHERE p._op IN ('removed', 'forget'){{ part_of("p") }})
