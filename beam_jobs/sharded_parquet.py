"""Deterministic Parquet output: rows hashed to N shards, sorted, written atomically.

Beam's own Parquet sink writes rows in whatever order the runner delivers
them, so two runs give different bytes. Here each row goes to the shard
picked by a stable hash of its sort key, each shard is sorted and written
under a temporary name then renamed. Every shard file exists even when empty,
so `part-00003-of-00008` always means the same thing.

Memory: one shard's rows are held by one worker while it is sorted; choose N
so that rows / N fits comfortably (the stages size N from their input).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from beam_jobs.files import join, write_bytes_atomic
from webtext_pipeline.records import SCHEMA_VERSION

ROW_GROUP_ROWS = 64_000


def shard_of(key: str, num_shards: int) -> int:
    """A stable shard number (crc32, never Python's salted hash)."""
    return zlib.crc32(key.encode("utf-8")) % num_shards


def row_shard(row: dict, sort_key: Callable[[dict], tuple], num_shards: int) -> int:
    """The shard of a row: `shard_of` its sort key (one rule, one row or a list at a time)."""
    return shard_of(repr(sort_key(row)), num_shards)


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.parquet"


def table_bytes(
    rows: list[dict],
    schema: pa.Schema,
    metadata: dict[str, str],
    row_group_rows: int = ROW_GROUP_ROWS,
) -> bytes:
    """Serialize rows to Parquet bytes with fixed settings (zstd, fixed row groups)."""
    meta = {b"webtext.schema_version": SCHEMA_VERSION.encode()}
    meta.update({k.encode(): v.encode() for k, v in metadata.items()})
    table = pa.Table.from_pylist(rows, schema=schema.with_metadata(meta))
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=row_group_rows,
        write_statistics=True,
    )
    return sink.getvalue()


class GroupWithEveryKey(beam.PTransform):
    """Keyed PCollection(s) → (key, values) for every key in range(num_keys), each with one
    `marker` among its values, so a key with no rows still comes out (and its file is
    written: an earlier run's file of that name never stands for this run's)."""

    def __init__(self, num_keys: int, marker: object = None) -> None:
        super().__init__()
        self.num_keys, self.marker = num_keys, marker

    def expand(self, keyed):
        inputs = tuple(keyed) if isinstance(keyed, (tuple, list)) else (keyed,)
        marker = self.marker
        every_key = (
            inputs[0].pipeline
            | "AllShards" >> beam.Create(range(self.num_keys))
            | "EmptyMarker" >> beam.Map(lambda index: (index, marker))
        )
        return (
            (*inputs, every_key)
            | "Flatten" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
        )


def split_by_shard(rows: list[dict], sort_key: Callable[[dict], tuple],
                   num_shards: int) -> Iterable[tuple[int, list[dict]]]:
    """A list of rows → (shard, its rows) per shard present (`row_shard`, the same shard
    as one row at a time)."""
    shards: dict[int, list[dict]] = {}
    for row in rows:
        shards.setdefault(row_shard(row, sort_key, num_shards), []).append(row)
    return shards.items()


class _WriteShard(beam.DoFn):
    def __init__(self, out_dir, prefix, schema, num_shards, sort_key, metadata,
                 row_group_rows, batched: bool = False) -> None:
        self.out_dir, self.prefix, self.schema = out_dir, prefix, schema
        self.num_shards, self.sort_key, self.metadata = num_shards, sort_key, metadata
        self.row_group_rows, self.batched = row_group_rows, batched

    def process(self, element: tuple[int, Iterable]) -> Iterable[tuple[str, int]]:
        index, values = element
        if self.batched:  # lists of rows
            rows = (row for value in values if value is not None for row in value)
        else:
            rows = (row for row in values if row is not None)
        kept = sorted(rows, key=self.sort_key)
        path = join(self.out_dir, shard_name(self.prefix, index, self.num_shards))
        data = table_bytes(kept, self.schema, self.metadata, self.row_group_rows)
        write_bytes_atomic(path, data)
        yield path, len(kept)


class WriteSortedShards(beam.PTransform):
    """Write a PCollection of row dicts as N sorted Parquet shards; outputs (path, rows).

    `batched`: the elements are lists of row dicts (a DoFn's rows of one bundle or
    batch), split by shard before the shuffle, so the runner carries one element per
    list and shard rather than one per row; the files are the same bytes.
    """

    def __init__(
        self,
        out_dir: str,
        prefix: str,
        schema: pa.Schema,
        num_shards: int,
        sort_key: Callable[[dict], tuple],
        metadata: dict[str, str] | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        batched: bool = False,
    ) -> None:
        super().__init__()
        self.out_dir, self.prefix, self.schema = out_dir, prefix, schema
        self.num_shards, self.sort_key = max(1, num_shards), sort_key
        self.metadata = metadata or {}
        self.row_group_rows, self.batched = row_group_rows, batched

    def expand(self, rows):
        num_shards, sort_key = self.num_shards, self.sort_key
        if self.batched:
            keyed = rows | "KeyByShard" >> beam.FlatMap(split_by_shard, sort_key, num_shards)
        else:
            keyed = rows | "KeyByShard" >> beam.Map(
                lambda row: (row_shard(row, sort_key, num_shards), row)
            )
        return (
            keyed
            | "GroupEveryShard" >> GroupWithEveryKey(num_shards)
            | "WriteShard"
            >> beam.ParDo(
                _WriteShard(
                    self.out_dir, self.prefix, self.schema, num_shards, sort_key, self.metadata,
                    self.row_group_rows, self.batched,
                )
            )
        )
