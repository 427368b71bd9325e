"""The archive index split by host into partition files, loaded a partition at a time.

`ArchiveIndex` loads every archived URL into each fetch worker process: ~1.7 GB
and ~15 minutes per process to resume a 45M-URL build. Here the index rows are
written once as `part-NNNNN.parquet` files, partitioned by the crc32 of the
URL's host with the same rule as the fetch stage's buckets (`partition_of`), so
the URLs of one fetch batch, and their hosts' robots.txt, sit in one partition.
A worker loads a partition the first time it looks up a URL of it and keeps the
`cache_partitions` most recently used (each packed, 38 B a URL); a redirect to
another host simply loads that host's partition. Lookups answer exactly as the
whole index would: the newest capture of a URL wins (see `PackedLocations`).

The partition files are built by the Beam fetch job (beam_jobs/fetch_job.py,
`IndexPartitions`) from the caches' index files and WARCs; this module only
defines their rows and reads them.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from webtext_pipeline.fetch.archive import RECENT_LIMIT, archive_key
from webtext_pipeline.fetch.location import ArchivedAt, RecentLocations
from webtext_pipeline.fetch.packed_index import PackedLocations, capture_micros, key_hash
from webtext_pipeline.fetch.store import LOCAL, ArchiveStore
from webtext_pipeline.fetch.urls import host_bucket_of

CACHE_PARTITIONS = 64

PARTITION_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("directory", pa.string()),
    ("warc_file", pa.string()),
    ("offset", pa.int64()),
    ("length", pa.int64()),
    ("status", pa.int32()),
    ("fetched_at", pa.string()),
    # Precomputed when the partition is written, so a worker loads it as arrays
    # (no per-row hashing or date parsing): the key's 64-bit hash, the capture time.
    ("key_hash", pa.uint64()),
    ("captured_us", pa.int64()),
])


def partition_of(key: str, partitions: int) -> int:
    """A URL key's partition: its host's bucket, by the fetch buckets' own rule."""
    return host_bucket_of(key, partitions)


def partition_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def partition_rows(directory: str, rows: Iterable[dict]) -> Iterator[dict]:
    """An archive directory's index rows (url, warc_file, offset, …) as partition rows."""
    for row in rows:
        key, fetched_at = archive_key(row["url"]), str(row["fetched_at"])
        yield {"key": key, "directory": directory,
               "warc_file": row["warc_file"], "offset": int(row["offset"]),
               "length": int(row["length"]), "status": int(row["status"]),
               "fetched_at": fetched_at, "key_hash": key_hash(key),
               "captured_us": capture_micros(fetched_at)}


def partition_bytes(rows: list[dict]) -> bytes:
    """One partition file: rows sorted by key (then location), zstd Parquet."""
    rows = sorted(rows, key=lambda r: (r["key"], r["directory"], r["warc_file"], r["offset"]))
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=PARTITION_SCHEMA), sink, compression="zstd")
    return sink.getvalue()


class PartitionedArchiveIndex:
    """URL -> ArchivedAt from partition files, a few partitions in memory at a time.

    The same calls as `ArchiveIndex` that the fetcher makes: `get`, `remember`, `len`
    (here: the URLs in the partitions loaded now, plus the recent ones).
    """

    def __init__(self, directory: str, partitions: int, store: ArchiveStore | None = None,
                 cache_partitions: int = CACHE_PARTITIONS, recent_limit: int = RECENT_LIMIT,
                 ) -> None:
        if partitions < 1 or cache_partitions < 1:
            raise ValueError("partitions and cache_partitions must be >= 1")
        self.directory = directory
        self.partitions = partitions
        self.store = store or LOCAL
        self.cache_partitions = cache_partitions
        self._loaded: OrderedDict[int, PackedLocations] = OrderedDict()
        self._recent = RecentLocations(recent_limit)
        self.loads = 0  # partition files read (a partition evicted and needed again counts twice)

    def get(self, url: str, normal: bool = False) -> ArchivedAt | None:
        key = url if normal else archive_key(url)
        where = self._recent.get(key)
        if where is not None:
            return where
        return self._partition(partition_of(key, self.partitions)).get(key)

    def remember(self, url: str, where: ArchivedAt, normal: bool = False) -> None:
        self._recent.remember(url if normal else archive_key(url), where)

    def __len__(self) -> int:
        return sum(len(p) for p in self._loaded.values()) + len(self._recent)

    def loaded_partitions(self) -> list[int]:
        return list(self._loaded)

    def _partition(self, index: int) -> PackedLocations:
        found = self._loaded.get(index)
        if found is not None:
            self._loaded.move_to_end(index)
            return found
        found = self._read(index)
        self.loads += 1
        self._loaded[index] = found
        if len(self._loaded) > self.cache_partitions:
            self._loaded.popitem(last=False)
        return found

    def _read(self, index: int) -> PackedLocations:
        """The partition's file, or nothing when it has none (no archived URL there)."""
        path = self.store.join(self.directory, partition_name(index))
        locations = PackedLocations()
        data = _read_if_there(path, self.store)
        if data is None:
            return locations
        table = pq.read_table(io.BytesIO(data), columns=[
            "directory", "warc_file", "offset", "length", "status", "key_hash", "captured_us"])
        if table.num_rows:
            files = pc.binary_join_element_wise(
                table["directory"], table["warc_file"], "\x00").combine_chunks().dictionary_encode()
            locations.add_columns(
                [tuple(name.split("\x00", 1)) for name in files.dictionary.to_pylist()],
                files.indices.to_numpy(), *(table[name].to_numpy() for name in (
                    "key_hash", "offset", "length", "status", "captured_us")))
        return locations


def _read_if_there(path: str, store: ArchiveStore) -> bytes | None:
    """A local or remote file's bytes; None when there is no such file."""
    if store.is_remote(path):
        if not store.list(path):
            return None
        with store.open(path) as handle:
            return handle.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
