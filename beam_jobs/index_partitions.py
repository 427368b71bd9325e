"""The archive index, split by host into partition files before the fetch starts.

    cache dirs ─► ListArchiveFiles ─► Reshuffle ─► ReadArchiveRows ─┐ (partition, row)
                  one element per WARC             its index rows   ├─► GroupByKey ─► WritePartition
    an empty marker per partition (GroupWithEveryKey) ──────────────┘   part-NNNNN.parquet each

Without this step every fetch worker process loaded the index of every WARC
already archived (the caches and OUT/warc), ~1.7 GB and ~15 minutes per process
to resume a 45M-URL build. Here the rows of all index files (and of WARCs
without one, scanned once) are shuffled by partition, `partition_of` (crc32 of
the URL's host, the fetch buckets' rule), and each partition is written as one
file; the fetch workers then load a partition when they first need it
(`webtext_pipeline.fetch.partitioned_index`). Every partition gets a file, an
empty one included, so files left by an earlier run with the same partition
count never answer for this one. The FetchBatches step takes this step's row
count as a side input, which makes the runner finish it first.

A finished WARC that cannot be read to its end (`ArchiveRows.damage`) is
listed, one "path<TAB>damage" line each, in `damaged-warcs.txt` next to the
partitions (rewritten every run, empty when all is well): the CLI warns with
it, because on the workers a log line would not reach the user.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.files import join, open_binary, write_bytes_atomic
from beam_jobs.sharded_parquet import GroupWithEveryKey
from webtext_pipeline.fetch.archive import ArchiveFile, archive_file_rows, archive_files
from webtext_pipeline.fetch.partitioned_index import (
    partition_bytes,
    partition_name,
    partition_of,
    partition_rows,
)
from webtext_pipeline.fetch.store import ArchiveStore

DAMAGED = "damaged"
DAMAGED_WARCS = "damaged-warcs.txt"


class ListArchiveFiles(beam.DoFn):
    """archive directory → its WARCs (a local folder that does not exist yet: none)."""

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store

    def process(self, directory: str) -> Iterator[ArchiveFile]:
        if not self.store.is_remote(directory) and not os.path.isdir(directory):
            return
        yield from archive_files(directory, self.store)


class ReadArchiveRows(beam.DoFn):
    """One WARC → (partition, partition row) for each response it holds; a damaged
    WARC also → "path<TAB>damage" on the DAMAGED output."""

    def __init__(self, store: ArchiveStore, partitions: int) -> None:
        self.store, self.partitions = store, partitions

    def process(self, file: ArchiveFile) -> Iterator:
        found = archive_file_rows(file, self.store)
        if found.damage:
            path = self.store.join(file.directory, file.name)
            yield beam.pvalue.TaggedOutput(DAMAGED, f"{path}\t{found.damage}")
        for row in partition_rows(file.directory, found.rows):
            yield partition_of(row["key"], self.partitions), row


class WritePartition(beam.DoFn):
    """(partition, rows and empty markers) → its file; yields the rows written."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def process(self, element: tuple[int, Iterable[dict | None]]) -> Iterator[int]:
        index, rows = element
        kept = [row for row in rows if row is not None]
        write_bytes_atomic(join(self.out_dir, partition_name(index)), partition_bytes(kept))
        yield len(kept)


class IndexPartitions(beam.PTransform):
    """PBegin → a one-element PCollection: the index rows written into `out_dir`."""

    def __init__(self, directories: Iterable[str], out_dir: str, partitions: int,
                 store: ArchiveStore) -> None:
        super().__init__()
        self.directories = list(directories)
        self.out_dir, self.partitions, self.store = out_dir, partitions, store

    def expand(self, pbegin):
        partitions = self.partitions
        read = (
            pbegin
            | "ArchiveDirs" >> beam.Create(self.directories)
            | "ListArchiveFiles" >> beam.ParDo(ListArchiveFiles(self.store))
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadArchiveRows" >> beam.ParDo(ReadArchiveRows(self.store, partitions))
            .with_outputs(DAMAGED, main="rows")
        )
        _ = (
            read[DAMAGED]
            | "ListDamaged" >> beam.combiners.ToList()
            | "WriteDamaged" >> beam.Map(write_damaged_list, self.out_dir)
        )
        return (
            read.rows
            | "GroupEveryPartition" >> GroupWithEveryKey(partitions)
            | "WritePartition" >> beam.ParDo(WritePartition(self.out_dir))
            | "IndexRows" >> beam.CombineGlobally(sum)
        )


def write_damaged_list(lines: list[str], out_dir: str) -> None:
    """The damaged WARCs, sorted, one per line (an empty file when there are none)."""
    text = "".join(f"{line}\n" for line in sorted(lines))
    write_bytes_atomic(join(out_dir, DAMAGED_WARCS), text.encode("utf-8"))


def read_damaged_list(out_dir: str) -> list[str]:
    """The lines `write_damaged_list` wrote in `out_dir`; none when it wrote no file."""
    path = join(out_dir, DAMAGED_WARCS)
    if not FileSystems.exists(path):
        return []
    with open_binary(path) as handle:
        text = handle.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if line]
