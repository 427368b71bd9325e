"""Memory and speed of the fetch archive index: packed arrays against dicts, and split by host.

A fetch worker needs the index of the WARCs already archived (the caches and
OUT/warc) to replay instead of refetching. **Anchor**, measured in the same
run on the same rows: the structure first used, a dict from the URL's index
key to an `ArchivedAt` dataclass, holding every URL. The second table is
what a Beam fetch worker holds now: the index split by host into partition
files of ~11,000 URLs (45M URLs over 4,096 buckets), a partition loaded on
first use, the 64 most recent kept (`fetch/partitioned_index.py`).

    python benchmarks/bench_archive_index.py --urls 200000 400000 --split-urls 400000 1600000

Rows are synthetic WARC index rows (URLs over 2,000 hosts, 20,000 records per
WARC file); held memory is what tracemalloc counts after building, timings
are medians of --repeats builds and of 20,000 lookups.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_mib, machine_line, median, print_table  # noqa: E402

from webtext_pipeline.fetch.archive import ArchivedAt, archive_key  # noqa: E402
from webtext_pipeline.fetch.packed_index import PackedLocations  # noqa: E402
from webtext_pipeline.fetch.partitioned_index import (  # noqa: E402
    CACHE_PARTITIONS,
    PartitionedArchiveIndex,
    partition_bytes,
    partition_name,
    partition_of,
    partition_rows,
)

URLS_PER_PARTITION = 11_000


def index_rows(n: int) -> list[dict]:
    return [{"url": f"https://site{i % 2000}.example/2017/{i}/story-{i * 7 % 9973}.html",
             "warc_file": f"webtext-{i // 20000:05d}.warc.gz", "offset": i * 9000,
             "length": 9000, "status": 200, "fetched_at": f"2018-01-{1 + i % 28:02d}T10:00:00Z"}
            for i in range(n)]


def build_dicts(rows: list[dict]) -> dict:
    index: dict[str, ArchivedAt] = {}
    for row in rows:
        index[archive_key(row["url"])] = ArchivedAt(
            "cache", row["warc_file"], row["offset"], row["length"], row["status"],
            row["fetched_at"])
    return index


def build_packed(rows: list[dict]) -> PackedLocations:
    packed = PackedLocations()
    for row in rows:
        packed.add(archive_key(row["url"]), "cache", row["warc_file"], row["offset"],
                   row["length"], row["status"], row["fetched_at"])
    len(packed)  # sorts
    return packed


def measure(build, rows: list[dict], repeats: int) -> tuple[int, float, float]:
    tracemalloc.start()
    index = build(rows)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    builds = []
    for _ in range(repeats):
        started = time.perf_counter()
        build(rows)
        builds.append(time.perf_counter() - started)
    keys = [archive_key(row["url"]) for row in rows[:: max(1, len(rows) // 20000)]]
    started = time.perf_counter()
    for key in keys:
        index.get(key)
    lookup = (time.perf_counter() - started) / len(keys)
    return held, median(builds), lookup


def measure_partitioned(rows: list[dict]) -> list[object]:
    """Write the rows as partition files, then look up one key of every partition."""
    import tempfile

    partitions = max(1, len(rows) // URLS_PER_PARTITION)
    by_partition: dict[int, list[dict]] = {}
    for row in partition_rows("cache", rows):
        by_partition.setdefault(partition_of(row["key"], partitions), []).append(row)
    with tempfile.TemporaryDirectory() as folder:
        for index in range(partitions):
            Path(folder, partition_name(index)).write_bytes(
                partition_bytes(by_partition.get(index, [])))
        keys = {partition_of(k, partitions): k for k in (archive_key(r["url"]) for r in rows)}
        tracemalloc.start()
        index = PartitionedArchiveIndex(folder, partitions)
        started = time.perf_counter()
        for key in keys.values():
            assert index.get(key, normal=True) is not None
        first = (time.perf_counter() - started) / len(keys)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        started = time.perf_counter()
        recent = list(keys.values())[-CACHE_PARTITIONS:]
        for _ in range(20):
            for key in recent:
                index.get(key, normal=True)
        cached = (time.perf_counter() - started) / (20 * len(recent))
    return [f"{len(rows):,}", f"{partitions:,}", f"{len(index.loaded_partitions())}",
            fmt_mib(held), f"{first * 1e3:.1f}", f"{cached * 1e6:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, nargs="+", default=[200_000, 400_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--split-urls", type=int, nargs="+", default=[400_000, 1_600_000],
                        help="URL counts for the split index (more partitions than it keeps)")
    args = parser.parse_args()
    print(machine_line())
    table = []
    for n in args.urls:
        rows = index_rows(n)
        for name, build in (("dict of ArchivedAt (anchor)", build_dicts),
                            ("PackedLocations", build_packed)):
            held, build_s, lookup_s = measure(build, rows, args.repeats)
            table.append([f"{n:,}", name, fmt_mib(held), f"{held / n:,.0f}",
                          f"{build_s / n * 1e6:.1f}", f"{lookup_s * 1e6:.1f}"])
    print_table("Archive index, loaded part", ["URLs", "structure", "held", "B/URL",
                "build µs/URL", "lookup µs"], table)
    split = [measure_partitioned(index_rows(n)) for n in args.split_urls]
    print_table("Split by host: one lookup in every partition, then lookups in loaded ones",
                ["URLs", "partitions", "partitions held", "memory held",
                 "first lookup in a partition ms", "lookup µs (loaded)"], split)


if __name__ == "__main__":
    main()
