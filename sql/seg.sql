{% from "_macros.sql" import fingerprint, raw_key_hash %}
-- The one pass over every model row of an everyday plan, where the warehouse keeps its result
-- (Capabilities.segment_hashes): each row's raw key hash and fingerprint. The digest reads them
-- (digest.sql) and, when it finds a difference, so does the candidate join (cand.sql), which
-- would otherwise read and hash the whole model a second time.
CREATE TABLE {{ seg }} AS
SELECT {{ raw_key_hash(raw_key, key_column) }} AS _rkh, {{ fingerprint(fields, "m") }} AS _fp
FROM {{ model }} AS m
