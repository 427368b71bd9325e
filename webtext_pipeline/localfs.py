"""Local file writes the generators share: atomic, and a no-op when nothing changed.

Leaving an unchanged file alone keeps its mtime, so the stage fingerprints
that include input files see the same inputs and reuse their output.
"""

from __future__ import annotations

from pathlib import Path


def write_if_changed(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file and a rename, unless it already holds it."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path
