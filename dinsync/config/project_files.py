"""Where a project's files are: dinsync.yml, and the `.sql` and `.yml` files of models/ and syncs/
(at any depth, hidden ones left out), whose names are the names of the models and syncs."""
from __future__ import annotations

import re
from pathlib import Path

from .base_models import NAME_PATTERN

PROJECT_FILE = "dinsync.yml"
_NAME = re.compile(NAME_PATTERN)


def _files(folder: Path, *patterns: str) -> list[Path]:
    """The files of `folder` (at any depth) matching `patterns`, but none hidden or in a hidden
    folder: editors' lock files (`.#customers.sql`), macOS's `._customers.sql`, `.ipynb_checkpoints`."""
    if not folder.is_dir():
        return []
    return sorted(p for pattern in patterns for p in folder.rglob(pattern)
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))
