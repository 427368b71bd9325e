"""A stage's Parquet inputs, checked from their footers before any pipeline starts.

Listing and counting go through Beam FileSystems (local, gs://, s3://) and
read only footers, so a wrong folder or a file from another stage is one
clear line, not a worker traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from beam_jobs.files import InputError, join

InputFile = tuple[str, int, float]  # path, size, mtime: what a stage fingerprint records


def list_parquet(directory: str, label: str, hint: str) -> list[InputFile]:
    """(path, size, mtime) of each *.parquet directly in `directory`, sorted.

    `label` names the folder in messages (e.g. "--links out/links"); `hint` says
    how to make the files (e.g. "run `webtext links`")."""
    try:
        found = FileSystems.match([join(directory, "*.parquet")])[0].metadata_list
    except Exception as exc:  # Beam wraps the cause in BeamIOError
        line = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputError(f"{label}: cannot list ({line})") from None
    if not found:
        raise InputError(f"{label}: no *.parquet files there ({hint})")
    return sorted((m.path, m.size_in_bytes, m.last_updated_in_seconds) for m in found)


def footer(path: str) -> pq.FileMetaData:
    try:
        with FileSystems.open(path) as handle:
            return pq.ParquetFile(handle).metadata
    except Exception as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None


def count_rows(files: Iterable[InputFile], needed: Iterable[str], kind: str) -> int:
    """Rows in the inputs; InputError naming a file that lacks a `needed` column."""
    rows = 0
    needed = set(needed)
    for path, _size, _mtime in files:
        meta = footer(path)
        missing = sorted(needed - set(meta.schema.to_arrow_schema().names))
        if missing:
            raise InputError(f"{path}: not {kind} (no {', '.join(missing)} column)")
        rows += meta.num_rows
    return rows
