"""The fetch stage as a Beam job: link rows → fetched rows (+ WARC files) and reject rows.

    links/*.parquet ─► KeyByHost ─► BatchPerKey ───────► FetchBatches ─┬─► fetched/part-*.parquet
                       crc32(host)   ≤ batch_size rows    one Fetcher    ├─► rejects/fetch-part-*
                       → bucket      per batch            per DoFn       └─► warc/*.warc.gz, index/

Host spreading. Each row is keyed by a stable hash (crc32, never Python's
salted `hash`) of its host name into one of `num_buckets` buckets, and
`BatchPerKey` cuts each bucket into batches of at most `batch_size` rows, so
no step ever holds a whole host's (or bucket's) URLs. All URLs of a host land
in one bucket, and a runner processes one key's state (so its batches) one
element at a time, so the Fetcher's own per-host politeness (`per_host_concurrency`,
`per_host_delay`, robots.txt Crawl-delay) holds for the whole job, not only
per worker — for the hosts of the input URLs; a redirect to another host is
polite within its worker only. Different buckets run on different workers
(and threads) at once; within a batch the Fetcher keeps up to `concurrency`
requests in flight across the batch's hosts.

The bucket count is sized from the input (about one full batch per bucket,
at most `MAX_BUCKETS`): fewer, fuller batches mean more hosts per
`fetch_many` call and so more requests in flight on a single-threaded local
runner, while thousands of buckets let a cluster spread the work.

Archived URLs are replayed, not fetched. With `index_dir` (run_fetch and the
full build pass OUT/fetch-index) the index of the caches and of `warc_dir` is
first split by host into partition files (beam_jobs/index_partitions, a side
input of FetchBatches so it finishes first) and each worker loads the
partitions of the hosts it meets; without it every Fetcher loads the whole
index at start. The DoFn builds one `Fetcher` in `setup()`, calls
`fetch_many` per batch, finishes its WARC file in `finish_bundle` and closes
in `teardown`. Counters (namespace "webtext"): `fetch.ok`, `fetch.<reason>`
per reject, and `fetch.requests`, `fetch.replayed`, `fetch.retries`,
`fetch.robots_fetches` from the Fetcher's own statistics.

Why not `beam.GroupIntoBatches`: in Beam 2.77 it always declares a
processing-time (REAL_TIME) timer, and a pipeline with one makes the
DirectRunner leave the FnApiRunner for the legacy BundleBasedDirectRunner,
which ignores `--direct_running_mode` and here fails outright (an assertion
in its GroupByKeyOnly evaluator, on the stage's shard writers). `BatchPerKey`
is the same batching with only an end-of-window event-time timer: a bag of
rows per key, emitted when it reaches `batch_size`, the remainder when the
(global) window ends. Every runner supports that state and timer kind.

Remote archives. `--out gs://…/webtext` puts the WARC files in OUT/warc on the
bucket: each worker writes its files in a local staging folder and, when one is
finished (rotation, end of bundle, teardown), publishes it and its index there
through Beam's FileSystems (`FileSystemsStore`, the store every Fetcher of
this job gets); a `--warc-cache gs://…` is read the same way. Local folders are
written and read in place, as before.

Checked on the DirectRunner in_memory and `--direct_running_mode=multi_processing`
(every DoFn and the FetchConfig pickle), see tests/test_fetch_pipeline.py.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from typing import Any

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain

from beam_jobs import progress
from beam_jobs.files import InputError, join
from beam_jobs.index_partitions import IndexPartitions
from beam_jobs.parquet_inputs import count_rows, list_parquet
from beam_jobs.row_stage import NAMESPACE, StageSpec, StageSummary, run_row_stage
from webtext_pipeline.fetch import ArchiveStore, FetchConfig, Fetcher, recover_orphans
from webtext_pipeline.fetch.archive import WARC_SUFFIXES
from webtext_pipeline.fetch.store import base_name
from webtext_pipeline.fetch.urls import host_bucket_of
from webtext_pipeline.records import FETCHED_SCHEMA, LINKS_SCHEMA, Reject

STAGE = "fetch"
REJECTS = "rejects"
FETCHED_DIR = "fetched"
FETCHED_PREFIX = "part"
WARC_DIR = "warc"
INDEX_PARTITIONS_DIR = "fetch-index"  # the archive index split by host (rewritten each run)

DEFAULT_BATCH_SIZE = 500  # rows per fetch_many call (a batch is held in memory, html included)
MAX_BUCKETS = 4096
ROWS_PER_SHARD = 2_000
BYTES_PER_SHARD = 256 << 20  # uncompressed html a writer holds while it sorts one shard
EXPECTED_PAGE_BYTES = 128 << 10  # a generous mean html size, for sizing shards
REJECT_ROWS_PER_SHARD = 100_000
ROW_GROUP_ROWS = 500  # html is big: ~64 MB row groups, so readers can stream a shard

# Link columns the fetched rows carry on (see fetcher.fetched_row); the rest are not read.
INPUT_COLUMNS = ["url", "id", "domain", "score", "n_posts", "subreddits", "created_utc", "title"]

# FetchConfig fields that never change which rows come out or what they hold:
# throughput and politeness knobs, the retry-jitter seed and cache sizes.
# `extra_headers` may carry secrets (cookies, tokens): only its header names count.
RESULT_NEUTRAL_FIELDS = frozenset({
    "concurrency", "per_host_concurrency", "per_host_delay", "max_crawl_delay",
    "max_pending", "seed", "robots_cache_size", "warc_staging",
    "index_partitions_dir", "index_partitions",
})
STAT_COUNTERS = ("requests", "replayed", "retries", "robots_fetches")


COPY_CHUNK = 8 << 20


# --------------------------------------------------------------------------- the archive store


class FileSystemsStore(ArchiveStore):
    """Remote archive folders through Beam's FileSystems (gs://, s3://, any registered
    scheme); local folders stay with the library's local code (pwrite, rename, no copy).

    `force_remote` sends local folders through FileSystems too, as if they were a
    bucket: tests use it to run the remote code path on a plain folder.
    """

    def __init__(self, force_remote: bool = False) -> None:
        self.force_remote = force_remote

    def is_remote(self, path: str) -> bool:
        return self.force_remote or "://" in str(path)

    def join(self, base: str, *parts: str) -> str:
        return FileSystems.join(str(base), *parts)

    def list(self, pattern: str) -> list[str]:
        try:
            result = FileSystems.match([pattern])[0]
        except Exception:  # nothing there (Beam raises for some schemes)
            return []
        return sorted(meta.path for meta in result.metadata_list)

    def open(self, path: str):
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)

    def publish(self, local_path: str, dest: str) -> None:
        with open(local_path, "rb") as source, FileSystems.create(
            dest, mime_type="application/octet-stream",
            compression_type=CompressionTypes.UNCOMPRESSED,
        ) as target:
            shutil.copyfileobj(source, target, COPY_CHUNK)
        os.unlink(local_path)


# --------------------------------------------------------------------------- the transform


def host_bucket(row: dict, num_buckets: int) -> int:
    """A stable bucket for the row's host (all URLs of a host share one bucket)."""
    return host_bucket_of(str(row.get("url") or ""), num_buckets, str(row.get("domain") or ""))


_ROWS = userstate.BagStateSpec("rows", coders.FastPrimitivesCoder())
_COUNT = userstate.ReadModifyWriteStateSpec("count", coders.VarIntCoder())
_FLUSH = userstate.TimerSpec("flush", TimeDomain.WATERMARK)
_ROWS_PARAM = beam.DoFn.StateParam(_ROWS)
_COUNT_PARAM = beam.DoFn.StateParam(_COUNT)
_FLUSH_PARAM = beam.DoFn.TimerParam(_FLUSH)


class BatchPerKey(beam.DoFn):
    """(key, row) → (key, [at most batch_size rows]); GroupIntoBatches without its
    processing-time timer (see the module doc). Stateful: one key at a time."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def process(
        self,
        element: tuple[int, dict],
        window=beam.DoFn.WindowParam,
        rows=_ROWS_PARAM,
        count=_COUNT_PARAM,
        flush=_FLUSH_PARAM,
    ) -> Iterator[tuple[int, list[dict]]]:
        key, row = element
        flush.set(window.max_timestamp())
        rows.add(row)
        n = (count.read() or 0) + 1
        if n >= self.batch_size:
            yield key, list(rows.read())
            rows.clear()
            n = 0
        count.write(n)

    @userstate.on_timer(_FLUSH)
    def on_flush(
        self,
        key=beam.DoFn.KeyParam,
        rows=_ROWS_PARAM,
        count=_COUNT_PARAM,
    ) -> Iterator[tuple[int, list[dict]]]:
        batch = list(rows.read())
        rows.clear()
        count.clear()
        if batch:
            yield key, batch


class FetchBatches(beam.DoFn):
    """(bucket, [link rows]) → fetched rows (main) and reject rows (tagged REJECTS)."""

    def __init__(self, config: FetchConfig, store: ArchiveStore | None = None) -> None:
        self.config = config
        self.store = store or FileSystemsStore()
        self._fetcher: Fetcher | None = None

    def setup(self) -> None:
        self._counters: dict[str, Any] = {}
        self._stats_seen: dict[str, int] = {}
        self._fetcher = Fetcher(self.config, self.store).open()

    def _count(self, name: str, n: int = 1) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(NAMESPACE, f"{STAGE}.{name}")
        counter.inc(n)

    def process(self, element: tuple[int, Iterable[dict]], *_index_ready: int) -> Iterator:
        assert self._fetcher is not None
        _bucket, rows = element
        for out in self._fetcher.fetch_many(rows):
            if isinstance(out, Reject):
                self._count(out.reason)
                yield beam.pvalue.TaggedOutput(REJECTS, out.to_row())
            else:
                self._count("ok")
                yield out
            progress.tick("fetch: rows done")
        self._count_stats()

    def _count_stats(self) -> None:
        assert self._fetcher is not None
        stats = self._fetcher.stats
        for name in STAT_COUNTERS:
            delta = stats.get(name, 0) - self._stats_seen.get(name, 0)
            if delta:
                self._count(name, delta)
                self._stats_seen[name] = stats.get(name, 0)

    def finish_bundle(self) -> None:
        if self._fetcher is not None:
            self._fetcher.flush()  # the bundle's WARC file is finished and indexed

    def teardown(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None


class FetchPages(beam.PTransform):
    """PCollection of link rows (LINKS_SCHEMA dicts, or at least `url`) →
    (fetched rows (FETCHED_SCHEMA dicts), reject rows (REJECTS_SCHEMA dicts)).

    Every input row leaves as exactly one of the two. Archive folders are reached
    through `store` (default: `FileSystemsStore()`, so gs:// and s3:// work).
    """

    def __init__(
        self,
        config: FetchConfig,
        num_buckets: int = 64,
        batch_size: int = DEFAULT_BATCH_SIZE,
        store: ArchiveStore | None = None,
        index_dir: str | None = None,
    ) -> None:
        super().__init__()
        if num_buckets < 1 or batch_size < 1:
            raise ValueError("num_buckets and batch_size must be >= 1")
        self.config = config
        self.store = store or FileSystemsStore()
        self.num_buckets = num_buckets
        self.batch_size = batch_size
        self.index_dir = index_dir

    def expand(self, rows):
        n = self.num_buckets
        config, ready = self.config, ()
        if self.index_dir:  # split the archive index by host first (beam_jobs/index_partitions)
            config = replace(config, index_partitions_dir=self.index_dir, index_partitions=n)
            written = rows.pipeline | "IndexPartitions" >> IndexPartitions(
                config.cache_dirs, self.index_dir, n, self.store)
            ready = (beam.pvalue.AsSingleton(written),)
        results = (
            rows
            | "KeyByHost" >> beam.Map(lambda row: (host_bucket(row, n), row))
            | "Batch" >> beam.ParDo(BatchPerKey(self.batch_size))
            | "FetchBatches" >> beam.ParDo(FetchBatches(config, self.store), *ready).with_outputs(
                REJECTS, main="fetched"
            )
        )
        return results.fetched, results[REJECTS]


# --------------------------------------------------------------------------- the stage


def fetched_sort_key(row: dict) -> tuple:
    return (row["url"],)


def rows_per_shard() -> int:
    """Fetched rows per output shard: what one shard writer holds while it sorts."""
    return max(1, min(ROWS_PER_SHARD, BYTES_PER_SHARD // EXPECTED_PAGE_BYTES))


def layout(rows_in: int, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, int]:
    """Buckets, output shards and reject shards for `rows_in` link rows."""
    per_shard = rows_per_shard()
    return {
        "buckets": max(1, min(MAX_BUCKETS, math.ceil(rows_in / batch_size))),
        "shards": max(1, math.ceil(rows_in / per_shard)),
        "reject_shards": max(1, math.ceil(rows_in / REJECT_ROWS_PER_SHARD)),
    }


def _warc_listing(
    directory: str, store: ArchiveStore | None = None
) -> list[tuple[str, int, float]]:
    """(name, size, mtime) of the WARC files in a cache directory (its contents decide replays)."""
    store = store or FileSystemsStore()
    if store.is_remote(directory):
        try:
            found = FileSystems.match([store.join(directory, "*")])[0].metadata_list
        except Exception:
            return []
        return sorted(
            (base_name(m.path), m.size_in_bytes, float(m.last_updated_in_seconds or 0))
            for m in found if m.path.endswith(WARC_SUFFIXES)
        )
    if not os.path.isdir(directory):
        return []
    listing = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(WARC_SUFFIXES):
            stat = os.stat(os.path.join(directory, name))
            listing.append((name, stat.st_size, stat.st_mtime))
    return listing


def config_fingerprint(config: FetchConfig, store: ArchiveStore | None = None) -> dict:
    """Every FetchConfig field that can change the results; no secrets (header values)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        if f.name in RESULT_NEUTRAL_FIELDS or f.name == "warc_dir":
            continue
        value = getattr(config, f.name)
        if f.name == "extra_headers":
            value = sorted(name.lower() for name, _ in value)
        out[f.name] = value
    out["warc_cache_files"] = {d: _warc_listing(d, store) for d in config.warc_cache}
    return out


def check_caches(config: FetchConfig, store: ArchiveStore) -> list[str]:
    """InputError for a `--warc-cache` that is not a local folder or a remote folder with
    WARC files; returns the local caches."""
    local = []
    for cache in config.warc_cache:
        if store.is_remote(cache):
            if not _warc_listing(cache, store):
                raise InputError(f"--warc-cache {cache}: no WARC files (*.warc.gz, *.warc) there")
        elif not os.path.isdir(cache):
            raise InputError(f"--warc-cache {cache}: not a directory")
        else:
            local.append(cache)
    return local


def run_fetch(
    links_dir: str,
    out: str,
    config: FetchConfig,
    options: PipelineOptions,
    batch_size: int = DEFAULT_BATCH_SIZE,
    store: ArchiveStore | None = None,
) -> StageSummary:
    """Fetch every link row in links_dir/*.parquet into OUT/fetched/part-*.parquet
    (FETCHED_SCHEMA, sorted by url), OUT/rejects/fetch-part-*.parquet and WARC files
    under OUT/warc/ (unless `config.warc_dir` names another folder); check that
    in = fetched + Σ rejects (RuntimeError if not).

    A rerun with the same input files and result-relevant options reuses the
    finished output (OUT/fetched/_stage.json); a rerun with other options replays
    what OUT/warc already holds instead of fetching it again.

    OUT/warc and the caches may be remote (gs://, s3://): they are reached through
    `store` (default `FileSystemsStore()`), and WARCs are staged on each worker.
    """
    files = list_parquet(links_dir, f"--links {links_dir}", "run `webtext links`")
    rows_in = count_rows(files, ["url"], "the links stage's output")
    if config.warc_dir is None:
        config = replace(config, warc_dir=join(out, WARC_DIR))
    assert config.warc_dir is not None
    store = store or FileSystemsStore()
    check_caches(config, store)
    if config.offline and not config.warc_cache and not _warc_listing(config.warc_dir, store):
        raise InputError(
            f"--offline: nothing to replay (no --warc-cache and no WARC files in {config.warc_dir})"
        )
    if not store.is_remote(config.warc_dir):
        recover_orphans(config.warc_dir)  # a killed run's .open files: finish and index them
    sizes = layout(rows_in, batch_size)
    spec = StageSpec(
        name=STAGE,
        out=out,
        input_pattern=join(links_dir, "*.parquet"),
        output_dir=join(out, FETCHED_DIR),
        output_prefix=FETCHED_PREFIX,
        schema=FETCHED_SCHEMA,
        sort_key=fetched_sort_key,
        num_shards=sizes["shards"],
        reject_shards=sizes["reject_shards"],
        fingerprint_inputs=files,
        fingerprint_options=config_fingerprint(config, store),
        metadata={"webtext.stage": STAGE, "webtext.fetch.user_agent": config.user_agent,
                  "webtext.fetch.offline": str(config.offline)},
        input_columns=[c for c in INPUT_COLUMNS if c in LINKS_SCHEMA.names],
        row_group_rows=ROW_GROUP_ROWS,
    )
    transform = FetchPages(config, num_buckets=sizes["buckets"], batch_size=batch_size,
                           store=store, index_dir=join(out, INDEX_PARTITIONS_DIR))
    return run_row_stage(spec, transform, options)


__all__ = [
    "BatchPerKey",
    "FetchBatches",
    "FetchPages",
    "FileSystemsStore",
    "check_caches",
    "config_fingerprint",
    "host_bucket",
    "layout",
    "run_fetch",
]
