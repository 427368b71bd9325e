"""The archive index split by host: built by a Beam step, read a partition at a time.

A fetch worker must not load the index of every archived URL (a resumed WebText
build has 45M); it loads the partition of the host it looks up. These tests
check that answers are exactly those of the whole index (cross-host redirects
included), that memory is bounded by the partition cache, and that stale
partition files of an earlier run never answer.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.fetch_job import FileSystemsStore
from beam_jobs.index_partitions import IndexPartitions
from beam_jobs.new_pipeline import new_pipeline
from webtext_pipeline.fetch import FetchConfig, Fetcher
from webtext_pipeline.fetch.archive import ArchivedAt
from webtext_pipeline.fetch.partitioned_index import (
    PartitionedArchiveIndex,
    partition_bytes,
    partition_name,
    partition_of,
)
from webtext_pipeline.fetch.urls import host_of
from webtext_pipeline.records import Reject
from webtext_pipeline.sample_web import sample_pages, write_sample_warc

PARTITIONS = 7


def build_partitions(directories: list[str], out_dir: str, partitions: int = PARTITIONS) -> int:
    """Run the Beam step on the DirectRunner; returns the index rows in the files written."""
    options = PipelineOptions(["--runner=DirectRunner"])
    with new_pipeline(options) as pipeline:
        _ = pipeline | IndexPartitions(directories, out_dir, partitions, FileSystemsStore())
    return sum(pq.ParquetFile(path).metadata.num_rows
               for path in Path(out_dir).glob("part-*.parquet"))


def replay(config: FetchConfig, urls: list[str], index=None) -> tuple[dict, object]:
    """Fetch `urls` (offline configs: replay only); `index` replaces the archive index."""
    with Fetcher(config).open() as fetcher:
        if index is not None:
            fetcher._archive = index
        outs = list(fetcher.fetch_many([{"url": u} for u in urls]))
        archive = fetcher._archive
    return {(o.key if isinstance(o, Reject) else o["url"]): o for o in outs}, archive


@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    write_sample_warc(cache / "sample-web.warc.gz")
    return cache


def test_partitioned_replay_equals_the_whole_index_with_one_partition_in_memory(
        sample_cache, tmp_path):
    parts = tmp_path / "parts"
    rows = build_partitions([str(sample_cache)], str(parts))
    # every capture of the cache, each in its host's partition (the newest wins on load)
    assert rows == pq.ParquetFile(sample_cache / "index" / "sample-web.warc.gz.parquet"
                                  ).metadata.num_rows
    assert sorted(p.name for p in parts.iterdir()) == [
        "damaged-warcs.txt", *(partition_name(i) for i in range(PARTITIONS))]

    pages = sample_pages()
    urls = sorted({p.url for p in pages})
    # the sample has redirects from one host to another in another partition
    assert any(p.location and partition_of(p.location, PARTITIONS) != partition_of(
        p.url, PARTITIONS) for p in pages)
    whole, _ = replay(FetchConfig(warc_cache=(str(sample_cache),), offline=True), urls)
    config = FetchConfig(warc_cache=(str(sample_cache),), offline=True,
                         index_partitions_dir=str(parts), index_partitions=PARTITIONS)
    _, default = replay(config, urls[:1])
    assert isinstance(default, PartitionedArchiveIndex)  # the config picks the split index
    split, archive = replay(config, urls, PartitionedArchiveIndex(
        str(parts), PARTITIONS, cache_partitions=1))
    assert split == whole
    assert sum(not isinstance(o, Reject) for o in split.values()) > 1000
    assert len(archive.loaded_partitions()) == 1  # never more than the cache holds
    assert archive.loads >= PARTITIONS  # every partition was read, one at a time


def test_the_fetch_stage_writes_and_uses_the_partitions(sample_cache, tmp_path):
    """run_fetch's own path (FetchPages with index_dir), on one host bucket per partition."""
    from test_fetch_pipeline import write_links

    from beam_jobs.fetch_job import INDEX_PARTITIONS_DIR, run_fetch

    pages = [p for p in sample_pages() if p.status == 200 and "html" in p.content_type][:300]
    links = write_links(tmp_path / "links", [p.url for p in pages])
    out = tmp_path / "out"
    summary = run_fetch(links, str(out),
                        FetchConfig(warc_cache=(str(sample_cache),), offline=True),
                        PipelineOptions(["--runner=DirectRunner"]), batch_size=50)
    assert summary.rows_in == 300 and summary.rows_out == 300  # every page replayed
    parts = sorted((out / INDEX_PARTITIONS_DIR).glob("part-*.parquet"))
    assert len(parts) == 6  # one per host bucket: 300 rows / 50 per batch
    assert (out / INDEX_PARTITIONS_DIR / "damaged-warcs.txt").read_text() == ""  # none


def test_damaged_warcs_are_listed_for_the_cli(sample_cache, tmp_path, capsys):
    """The scan runs on workers, where a log line would not reach the user: the step lists
    damaged WARCs in a file, and the CLI's warning names the first one."""
    from beam_jobs.fetch_job import INDEX_PARTITIONS_DIR
    from beam_jobs.index_partitions import read_damaged_list
    from webtext_pipeline.cli_stages import warn_damaged_warcs

    damaged_cache = tmp_path / "damaged"
    damaged_cache.mkdir()
    data = (sample_cache / "sample-web.warc.gz").read_bytes()
    (damaged_cache / "cut.warc.gz").write_bytes(data[: len(data) // 2])
    (damaged_cache / "garbage.warc.gz").write_bytes(b"garbage" * 10)
    out = tmp_path / "out"
    parts = out / INDEX_PARTITIONS_DIR
    rows = build_partitions([str(sample_cache), str(damaged_cache)], str(parts))
    whole = pq.ParquetFile(sample_cache / "index" / "sample-web.warc.gz.parquet").metadata
    assert whole.num_rows < rows < 2 * whole.num_rows  # half of the cut copy is indexed
    listed = read_damaged_list(str(parts))
    assert [line.split("\t")[0] for line in listed] == [
        str(damaged_cache / "cut.warc.gz"), str(damaged_cache / "garbage.warc.gz")]
    assert all("\tread stopped at byte " in line for line in listed)
    warn_damaged_warcs(str(out))
    [warning] = capsys.readouterr().err.splitlines()
    assert warning.startswith("webtext: warning: 2 WARC file(s) in the archive could not be "
                              f"read to their end ({damaged_cache / 'cut.warc.gz'} and 1 more)")
    build_partitions([str(sample_cache)], str(parts))  # a clean archive: the list empties
    assert read_damaged_list(str(parts)) == []
    warn_damaged_warcs(str(out))
    assert capsys.readouterr().err == ""


def test_stale_partition_files_never_answer(sample_cache, tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    page = next(p for p in sample_pages() if p.status == 200)
    stale = {"key": page.url, "directory": "/gone", "warc_file": "old.warc.gz",
             "offset": 0, "length": 1, "status": 200, "fetched_at": "2010-01-01T00:00:00Z"}
    for index in range(PARTITIONS):
        (parts / partition_name(index)).write_bytes(partition_bytes([stale]))
    build_partitions([str(sample_cache)], str(parts))
    found = PartitionedArchiveIndex(str(parts), PARTITIONS).get(page.url)
    assert found is not None and found.directory == str(sample_cache)


def test_missing_partitions_and_recent_responses(tmp_path):
    index = PartitionedArchiveIndex(str(tmp_path / "none"), 3)
    assert index.get("https://a.example/x") is None  # no file: nothing archived there
    where = ArchivedAt("d", "f.warc.gz", 5, 10, 200, "2018-01-01T00:00:00Z")
    index.remember("https://a.example/x", where)
    assert index.get("https://a.example/x") == where
    assert len(index) == 1


def test_partition_of_follows_the_host():
    a = partition_of("https://news.example/a", 64)
    assert partition_of("https://news.example/b?q=1", 64) == a
    assert partition_of("https://news.example/robots.txt", 64) == a
    assert host_of("https://news.example/a") == "news.example"
    with pytest.raises(ValueError):
        PartitionedArchiveIndex("x", 0)
