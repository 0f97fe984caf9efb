"""Step 3 of the data path: plan rows -> validated JSON objects, vectorised in Polars."""
from dinsync.mapping.arrow_frames import frame_from_arrow
from dinsync.mapping.frame import FieldMapping, KeyMapping, MappedBatch, map_batch
from dinsync.mapping.json import batches_by_size
from dinsync.mapping.normalize import email_is_valid, normalize_email, normalize_phones

__all__ = [
    "FieldMapping",
    "KeyMapping",
    "MappedBatch",
    "frame_from_arrow",
    "map_batch",
    "batches_by_size",
    "email_is_valid",
    "normalize_email",
    "normalize_phones",
]
