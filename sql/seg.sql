{% from "_macros.sql" import model_hashes with context %}
-- The one pass over every model row of an everyday plan, where the warehouse keeps its result
-- (Capabilities.segment_hashes): each row's raw key hash and fingerprint. The digest reads them
-- (digest.sql) and, when it finds a difference, so does the candidate join (cand.sql), which
-- would otherwise read and hash the whole model a second time.
CREATE TABLE {{ seg }} AS
{{ model_hashes() }}
