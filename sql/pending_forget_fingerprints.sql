-- The mapping changed (see forget_fingerprints.sql): records whose outcome is still awaited were
-- stashed with the fingerprint of the old mapping's values, which the same model columns give
-- again after fields are swapped between them or retyped. Acknowledged later (by a run whose
-- mapping record is already the new one, so nothing is forgotten then), such a record would enter
-- the snapshot as if delivered under the new mapping, and be skipped. Without a fingerprint it
-- enters to be compared field by field (pending_ok_insert.sql), or parked to be sent once more.
UPDATE {{ pending }} SET _fp = NULL WHERE _fp IS NOT NULL
