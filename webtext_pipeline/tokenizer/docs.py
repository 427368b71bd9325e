"""Reading the corpus shards (``OUT/docs/shard-*.parquet``) a batch at a time.

Only the columns ``id``, ``text`` and ``split`` are read, in record batches, so
memory stays at one batch per reader however large the corpus. Paths are local
folders; a URI (``gs://…``, ``s3://…``) goes through ``pyarrow.fs`` where the
installed pyarrow has that filesystem (not exercised offline). Beam is not
imported here: this is the library layer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from webtext_pipeline.tokenizer.bytelevel import TokenizerError

COLUMNS = ("id", "text", "split")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Shard:
    """One Parquet shard: where it is, how big, and a cheap content fingerprint."""

    path: str
    size: int
    rows: int
    row_groups: tuple[int, ...]  # rows per row group
    fingerprint: str  # sha256 of size + the last 64 KiB (the footer: offsets and statistics)

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    if "://" in path:
        try:
            return pafs.FileSystem.from_uri(path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise TokenizerError(f"{path}: this pyarrow cannot open it ({exc})") from None
    return pafs.LocalFileSystem(), os.path.abspath(path)


def list_shards(docs_dir: str) -> list[Shard]:
    """The shards of ``docs_dir`` in name order; checks each has id, text and split."""
    fs, base = _filesystem(docs_dir)
    info = fs.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise TokenizerError(f"--docs {docs_dir}: no such folder")
    if info.type == pafs.FileType.File:
        paths = [base]
    else:
        entries = fs.get_file_info(pafs.FileSelector(base))
        names = sorted(e.path for e in entries if e.type == pafs.FileType.File
                       and e.base_name.endswith(".parquet"))
        shards = [p for p in names if p.rsplit("/", 1)[-1].startswith("shard-")]
        paths = shards or names
    if not paths:
        raise TokenizerError(f"--docs {docs_dir}: no shard-*.parquet files")
    return [_describe(fs, path, docs_dir) for path in paths]


def _describe(fs: pafs.FileSystem, path: str, docs_dir: str) -> Shard:
    try:
        with fs.open_input_file(path) as handle:
            size = handle.size()
            handle.seek(max(0, size - (64 << 10)))
            tail = handle.read()
            handle.seek(0)
            meta = pq.ParquetFile(handle).metadata
    except (OSError, pa.ArrowInvalid) as exc:
        raise TokenizerError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in COLUMNS if c not in meta.schema.names]
    if missing:
        raise TokenizerError(f"{path}: missing column(s) {', '.join(missing)} "
                             f"(a --docs folder holds the corpus shards; got {docs_dir})")
    digest = hashlib.sha256(str(size).encode("ascii") + tail).hexdigest()
    groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    uri = path if "://" not in docs_dir else f"{docs_dir.split('://', 1)[0]}://{path}"
    return Shard(uri, size, meta.num_rows, groups, digest)


def open_parquet(path: str) -> pq.ParquetFile:
    fs, local = _filesystem(path)
    return pq.ParquetFile(fs.open_input_file(local))


def iter_batches(path: str, columns: tuple[str, ...] = COLUMNS, batch_rows: int = 1024,
                 row_groups: list[int] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (all row groups, or the ones named)."""
    parquet = open_parquet(path)
    try:
        yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns),
                                        row_groups=row_groups, use_threads=False)
    finally:
        parquet.close()


def byte_lengths(batch: pa.RecordBatch) -> list[int]:
    """UTF-8 length of each ``text`` in the batch (no Python strings made)."""
    return pc.binary_length(batch.column("text")).to_pylist()


def corpus_fingerprint(shards: list[Shard]) -> list[list]:
    """What a stage's output depends on in its input: shard names, sizes and footers."""
    return [[shard.name, shard.size, shard.rows, shard.fingerprint[:16]] for shard in shards]
