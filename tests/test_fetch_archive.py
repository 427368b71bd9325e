"""The fetch stage's archive: WARC files and indexes, replay, offline, resume after SIGKILL.

Real WARC files written and read back with warcio, real Parquet indexes, a
real subprocess killed with SIGKILL part way through a run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter
from webserver import FINE_TEXT, WebServer

from beam_jobs.fetch_job import FileSystemsStore
from webtext_pipeline.fetch import (
    ArchiveIndex,
    ArchiveStore,
    FetchConfig,
    Fetcher,
    RemoteArchiveError,
    recover_orphans,
)
from webtext_pipeline.fetch.archive import scan_warc
from webtext_pipeline.records import WARC_INDEX_SCHEMA, Reject
from webtext_pipeline.sample_web import sample_pages, write_sample_warc

REPO = Path(__file__).resolve().parents[1]

# Pages whose verdict comes from the response itself, so a replay must reproduce it.
ARCHIVED_KINDS = [
    "/fine", "/gzip", "/missing", "/pdf-as-html", "/pdf", "/redirect/chain/3",
    "/redirect/loop/a", "/huge?mb=1", "/cp1252-meta", "/sjis-meta", "/no-content-type",
    "/gzip-bomb", "/redirect/none", "/flaky", "/private/x",
]
# Pages that end without a usable response: never indexed, so fetched again online.
TRANSIENT_KINDS = ["/slow?s=3", "/always-500", "/reset"]


def make_config(**overrides) -> FetchConfig:
    settings = dict(
        allow_private_addresses=True, per_host_delay=0.0, per_host_concurrency=8,
        concurrency=8, connect_timeout=1.0, read_timeout=0.3, deadline=1.5,
        max_bytes=256 * 1024, max_decoded_bytes=1 << 20, retries=1, backoff_base=0.01,
        backoff_max=0.05, retry_after_max=2.0, seed=0,
    )
    settings.update(overrides)
    return FetchConfig(**settings)


@pytest.fixture
def server():
    with WebServer(robots="User-agent: *\nDisallow: /private/\n") as web:
        yield web


def run(config: FetchConfig, urls: list[str], store=None) -> dict[str, object]:
    with Fetcher(config, store) as fetcher:
        outs = list(fetcher.fetch_many([{"url": u, "title": f"t {u}"} for u in urls]))
    assert len(outs) == len(urls)
    return {(o.key if isinstance(o, Reject) else o["url"]): o for o in outs}


def records(path: Path):
    with open(path, "rb") as handle:
        for record in ArchiveIterator(handle):
            body = record.content_stream().read()
            yield record.rec_type, record.rec_headers, record.http_headers, body


# --- what is written ------------------------------------------------------------------------


def test_warc_files_and_index_are_complete_and_readable(server, tmp_path):
    urls = [server.url(p) for p in ARCHIVED_KINDS]
    outs = run(make_config(warc_dir=str(tmp_path)), urls)
    warcs = sorted(tmp_path.glob("*.warc.gz"))
    assert len(warcs) == 1 and not list(tmp_path.glob("*.open"))
    index = pq.read_table(tmp_path / "index" / f"{warcs[0].name}.parquet")
    assert index.schema.equals(WARC_INDEX_SCHEMA)
    indexed = {row["url"]: row for row in index.to_pylist()}
    # every hop and robots.txt, indexed under its own URL
    for n in range(4):
        assert indexed[server.url(f"/redirect/chain/{n}")]["status"] in (200, 301, 302)
    assert indexed[server.url("/robots.txt")]["status"] == 200
    assert server.url("/private/x") not in indexed  # never requested
    assert indexed[server.url("/flaky")]["status"] == 200  # the retried 500 is not indexed
    scanned = scan_warc(warcs[0], warcs[0].name).rows  # a scan finds exactly the index
    key = ("url", "warc_file", "offset", "length", "status", "fetched_at")
    assert sorted(tuple(r[k] for k in key) for r in scanned) == sorted(
        tuple(r[k] for k in key) for r in index.to_pylist())

    kinds = [(t, h.get_header("WARC-Target-URI")) for t, h, _, _ in records(warcs[0])]
    assert kinds[0][0] == "warcinfo"
    responses = [u for t, u in kinds if t == "response"]
    assert len([t for t, _ in kinds if t == "request"]) == len(responses)
    assert responses.count(server.url("/flaky")) == 2  # the 500 is archived, not indexed

    # the row's location is the response record, readable on its own
    row = outs[server.url("/fine")]
    with open(warcs[0], "rb") as handle:
        handle.seek(row["warc_offset"])
        blob = handle.read(row["warc_length"])
    record = next(iter(ArchiveIterator(io.BytesIO(blob))))
    assert record.rec_type == "response"
    assert record.rec_headers.get_header("WARC-Target-URI") == server.url("/fine")
    assert record.rec_headers.get_header("WARC-Date") == row["fetched_at"]
    assert FINE_TEXT.encode() in record.content_stream().read()
    assert len(gzip.decompress(blob)) > 0  # one whole gzip member


def test_stored_body_is_the_wire_body(server, tmp_path):
    urls = [server.url("/gzip"), server.url("/huge-chunked?mb=1")]
    run(make_config(warc_dir=str(tmp_path)), urls)
    [warc] = tmp_path.glob("*.warc.gz")
    stored = {w.get_header("WARC-Target-URI"): (w, h, body)
              for t, w, h, body in records(warc) if t == "response"}
    _, headers, body = stored[server.url("/gzip")]
    assert headers.get_header("Content-Encoding") == "gzip"
    assert FINE_TEXT.encode() in body  # warcio's content_stream undoes the gzip we stored
    warc_headers, headers, body = stored[server.url("/huge-chunked?mb=1")]
    assert headers.get_header("X-Crawler-Transfer-Encoding") == "chunked"
    assert warc_headers.get_header("WARC-Truncated") == "length"
    assert len(body) == 256 * 1024


def test_warc_files_rotate_by_size(server, tmp_path):
    urls = [server.url(f"/page/{i}") for i in range(12)]
    outs = run(make_config(warc_dir=str(tmp_path), warc_max_bytes=1, respect_robots=False), urls)
    warcs = sorted(tmp_path.glob("*.warc.gz"))
    assert len(warcs) == 12  # a file is finished as soon as it reaches the size
    assert {p.name for p in (tmp_path / "index").glob("*.parquet")} == {
        f"{w.name}.parquet" for w in warcs}
    assert {o["warc_file"] for o in outs.values()} == {w.name for w in warcs}


def test_warc_files_rotate_by_record_count(server, tmp_path):
    """A file's index rows stay in memory until it is finished: a count cap bounds them."""
    urls = [server.url(f"/page/{i}") for i in range(10)]
    outs = run(make_config(warc_dir=str(tmp_path), warc_max_records=4, respect_robots=False),
               urls)
    warcs = sorted(tmp_path.glob("*.warc.gz"))
    assert len(warcs) == 3  # 4 + 4 + 2 responses
    counts = [sum(1 for t, *_ in records(w) if t == "response") for w in warcs]
    assert sorted(counts) == [2, 4, 4]
    assert {o["warc_file"] for o in outs.values()} == {w.name for w in warcs}


# --- replay -----------------------------------------------------------------------------------


def test_rerun_replays_archived_urls_without_requests(server, tmp_path):
    urls = [server.url(p) for p in ARCHIVED_KINDS + TRANSIENT_KINDS]
    config = make_config(warc_dir=str(tmp_path))
    first = run(config, urls)
    before = dict(server.counts)
    second = run(config, urls)
    for path in ARCHIVED_KINDS:
        assert second[server.url(path)] == first[server.url(path)], path
    requested = {p for p, n in server.counts.items() if n > before.get(p, 0)}
    # only the transient failures go back to the network (and their retries)
    assert requested == set(TRANSIENT_KINDS)


def test_offline_replay_is_identical_and_misses_are_not_in_archive(server, tmp_path):
    urls = [server.url(p) for p in ARCHIVED_KINDS + TRANSIENT_KINDS]
    first = run(make_config(warc_dir=str(tmp_path)), urls)
    total = server.total()
    misses = [server.url("/never-fetched"), "http://example.com/elsewhere"]
    offline = run(make_config(warc_cache=[str(tmp_path)], offline=True), urls + misses)
    assert server.total() == total  # offline: not one request, robots.txt included
    for path in ARCHIVED_KINDS:
        assert offline[server.url(path)] == first[server.url(path)], path
    for url in [server.url(p) for p in TRANSIENT_KINDS] + misses:
        assert isinstance(offline[url], Reject) and offline[url].reason == "not_in_archive"
    # and a second offline replay is identical to the first
    assert run(make_config(warc_cache=[str(tmp_path)], offline=True), urls + misses) == offline


def test_an_intermediate_redirect_hop_replays_to_the_same_page(server, tmp_path):
    first = run(make_config(warc_dir=str(tmp_path)), [server.url("/redirect/chain/3")])
    row = first[server.url("/redirect/chain/3")]
    hop = server.url("/redirect/chain/1")
    replay = run(make_config(warc_cache=[str(tmp_path)], offline=True), [hop])[hop]
    assert replay["final_url"] == row["final_url"] and replay["html"] == row["html"]
    assert replay["warc_offset"] == row["warc_offset"]


def test_a_damaged_archive_falls_back_to_fetching(server, tmp_path):
    run(make_config(warc_dir=str(tmp_path)), [server.url("/fine")])
    [warc] = tmp_path.glob("*.warc.gz")
    warc.write_bytes(b"garbage" * 10)
    row = run(make_config(warc_cache=[str(tmp_path)], respect_robots=False),
              [server.url("/fine")])[server.url("/fine")]
    assert FINE_TEXT in row["html"] and server.count("/fine") == 2


def test_damaged_warcs_are_reported_with_the_responses_before_the_damage(tmp_path):
    """A cut download or garbage in a cache is named, not taken for an archive that simply
    lacks those URLs; a crashed writer's `.open` file is expected to end torn."""
    source = tmp_path / "source.warc.gz"
    write_sample_warc(source)
    data = source.read_bytes()
    rows = scan_warc(source, source.name).rows
    middle, before = rows[len(rows) // 2], rows[len(rows) // 2 - 1]
    assert [r["url"] for r in rows].count(middle["url"]) == 1
    plain = gzip.decompress(data)
    (tmp_path / "plain.warc").write_bytes(plain)
    plain_middle = scan_warc(tmp_path / "plain.warc", "plain.warc").rows[len(rows) // 2]
    cache = tmp_path / "cache"
    cache.mkdir()
    cut = middle["offset"] + middle["length"] // 2
    (cache / "cut.warc.gz").write_bytes(data[:cut])
    (cache / "torn.warc.gz").write_bytes(data[: middle["offset"] + middle["length"] - 3])
    (cache / "garbage.warc.gz").write_bytes(b"garbage" * 10)
    (cache / "plain.warc").write_bytes(
        plain[: plain_middle["offset"] + plain_middle["length"] // 2])
    (cache / "crashed.warc.gz.open").write_bytes(data[:cut])
    for _load in range(2):  # reported again on the next load: no index is written for them
        index = ArchiveIndex.load([str(cache)])
        damaged = dict(line.split(": ", 1) for line in index.damaged)
        assert sorted(damaged) == ["cut.warc.gz", "garbage.warc.gz", "plain.warc",
                                   "torn.warc.gz"]
        assert damaged["cut.warc.gz"].startswith(
            f"read stopped at byte {middle['offset']} ({len(rows) // 2} responses before it)")
        assert "Unknown archive format" in damaged["garbage.warc.gz"]
        assert damaged["torn.warc.gz"].endswith("the last record is cut short")
        assert damaged["plain.warc"].startswith("read stopped at byte ")
        assert index.get(before["url"]) is not None  # what precedes the damage still serves
        assert index.get(middle["url"]) is None  # the record cut short never does
        written = {p.name for p in cache.glob("index/*.parquet")}
        assert not written & {f"{name}.parquet" for name in damaged}


def test_missing_cache_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="WARC cache directory"):
        Fetcher(make_config(warc_cache=[str(tmp_path / "nope")])).fetch_one("http://x.test/")


# --- foreign WARCs ------------------------------------------------------------------------------


def _resolve(pages: dict, url: str, hops: int = 0) -> tuple[str, object]:
    page = pages.get(url)
    if page is None:
        return "not_in_archive", None
    if page.status == 301:
        return _resolve(pages, page.location, hops + 1)
    if page.status != 200:
        return f"http_{page.status}", page
    if "html" not in page.content_type:
        return "not_html", page
    return "ok", page


def test_foreign_warc_is_scanned_indexed_and_replayed(tmp_path):
    cache = tmp_path / "sample"
    write_sample_warc(cache / "sample-web.warc.gz")
    pages = {p.url: p for p in sample_pages()}
    urls = sorted(pages)
    out = run(make_config(warc_cache=[str(cache)], offline=True), urls)
    assert (cache / "index" / "sample-web.warc.gz.parquet").exists()  # written once
    for url in urls:
        verdict, page = _resolve(pages, url)
        got = out[url]
        if verdict == "ok":
            assert not isinstance(got, Reject), (url, got)
            assert got["final_url"] == page.url
            assert got["fetched_at"] == "2018-02-01T00:00:00Z"
            assert got["html"] == page.body.decode("utf-8")
        else:
            assert isinstance(got, Reject) and got.reason == verdict, (url, got)
    # the second load reads the index instead of scanning
    assert ArchiveIndex.load([str(cache)]).scanned == []


def test_foreign_warc_that_kept_chunked_encoding(tmp_path):
    body = b"<html><body><p>chunked page</p></body></html>"
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with open(tmp_path / "foreign.warc.gz", "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html"),
                                              ("Transfer-Encoding", "chunked")],
                                   protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            "http://foreign.example/page", "response", payload=io.BytesIO(chunked),
            http_headers=headers))
    row = run(make_config(warc_cache=[str(tmp_path)], offline=True),
              ["http://foreign.example/page"])["http://foreign.example/page"]
    assert row["html"] == body.decode()


# --- kill, resume, recover ------------------------------------------------------------------------

KILL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from webtext_pipeline.fetch import FetchConfig, Fetcher
    config = FetchConfig(**json.loads(sys.argv[1]))
    urls = json.loads(sys.argv[2])
    with Fetcher(config) as fetcher:
        for out in fetcher.fetch_many({"url": u} for u in urls):
            pass
    """
)


def test_killed_run_resumes_without_refetching_archived_urls(tmp_path):
    warc_dir = tmp_path / "warc"
    settings = dict(allow_private_addresses=True, per_host_delay=0.0, per_host_concurrency=4,
                    concurrency=4, warc_dir=str(warc_dir), read_timeout=2.0, deadline=5.0)
    with WebServer(latency=0.02) as web:
        urls = [web.url(f"/page/{i}") for i in range(150)]
        script = tmp_path / "fetch_script.py"
        script.write_text(KILL_SCRIPT)
        child = subprocess.Popen(
            [sys.executable, str(script), json.dumps(settings), json.dumps(urls)], cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 20
            while sum(n for p, n in web.counts.items() if p.startswith("/page/")) < 40:
                assert child.poll() is None, "the fetch finished before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL

        [orphan] = warc_dir.glob("*.warc.gz.open")
        assert not list(warc_dir.glob("*.warc.gz"))
        archived = {u for u in urls if u in ArchiveIndex.load([str(warc_dir)])}
        assert 10 <= len(archived) < len(urls)
        before = {u: web.count(u.split(str(web.port), 1)[1]) for u in urls}

        rows = run(make_config(**settings), urls)
        assert all(not isinstance(r, Reject) for r in rows.values())
        for url in urls:
            after = web.count(url.split(str(web.port), 1)[1])
            if url in archived:
                assert after == before[url] == 1, url  # never asked for again
                assert rows[url]["warc_file"] == orphan.name[: -len(".open")]
            else:
                assert after == before[url] + 1, url
        assert web.count("/robots.txt") == 1  # robots.txt (a 404) was archived too

    # With no writer running, the orphan is cut at its last whole record and finished.
    assert recover_orphans(warc_dir) == [orphan.name[: -len(".open")]]
    assert not list(warc_dir.glob("*.open"))
    offline = run(make_config(warc_cache=[str(warc_dir)], offline=True), urls)
    assert offline == rows


def test_recover_orphans_cuts_a_torn_last_record(tmp_path, server):
    run(make_config(warc_dir=str(tmp_path)), [server.url(f"/page/{i}") for i in range(3)])
    [warc] = tmp_path.glob("*.warc.gz")
    rows = pq.read_table(tmp_path / "index" / f"{warc.name}.parquet").to_pylist()
    last = max(rows, key=lambda r: r["offset"])
    data = warc.read_bytes()
    # Pretend the writer died half-way through the last response record.
    orphan = tmp_path / f"{warc.name}.open"
    orphan.write_bytes(data[: last["offset"] + last["length"] // 2])
    warc.unlink()
    (tmp_path / "index" / f"{warc.name}.parquet").unlink()
    scanned, end, _error = scan_warc(orphan, warc.name)
    assert {r["url"] for r in scanned} == {r["url"] for r in rows} - {last["url"]}
    assert end == last["offset"]
    assert recover_orphans(tmp_path) == [warc.name]
    assert warc.stat().st_size == last["offset"]
    recovered = pq.read_table(tmp_path / "index" / f"{warc.name}.parquet").to_pylist()
    assert sorted(r["url"] for r in recovered) == sorted(r["url"] for r in scanned)


# --- remote archive folders (through Beam's FileSystems) -------------------------------------

# A store that sends plain local folders through Beam's FileSystems, as if they were a
# bucket: the remote code path (staging, publication, listing, stream reads) on real files.
AS_REMOTE = FileSystemsStore(force_remote=True)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


class CountingStore(FileSystemsStore):
    """AS_REMOTE that counts publications and fails the first `fail` of them."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__(force_remote=True)
        self.fail = fail
        self.published: list[str] = []

    def publish(self, local_path: str, dest: str) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("bucket unavailable")
        super().publish(local_path, dest)
        self.published.append(os.path.basename(dest))


def test_remote_archive_is_staged_published_and_replayed(server, tmp_path):
    archive, staging = tmp_path / "bucket" / "warc", tmp_path / "staging"
    urls = [server.url(p) for p in ARCHIVED_KINDS + TRANSIENT_KINDS]
    config = make_config(warc_dir=str(archive), warc_staging=str(staging), warc_max_records=6)
    first = run(config, urls, AS_REMOTE)
    warcs = sorted(archive.glob("*.warc.gz"))
    assert len(warcs) >= 3  # rotated, each file published when finished
    assert sorted(p.name for p in (archive / "index").glob("*.parquet")) == [
        f"{w.name}.parquet" for w in warcs]
    assert not list(archive.glob("*.open"))
    assert files_under(staging) == []  # every local copy deleted once published
    for out in first.values():
        if not isinstance(out, Reject):
            assert (archive / out["warc_file"]).exists()
    # The published files are the same as a local archive's: indexed, and read back.
    index = ArchiveIndex.load([str(archive)], store=AS_REMOTE)
    assert index.scanned == [] and server.url("/fine") in index

    # A rerun replays from the remote folder: only the transient failures are asked again.
    before = dict(server.counts)
    second = run(config, urls, AS_REMOTE)
    for path in ARCHIVED_KINDS:
        assert second[server.url(path)] == first[server.url(path)], path
    requested = {p for p, n in server.counts.items() if n > before.get(p, 0)}
    assert requested == set(TRANSIENT_KINDS)
    assert files_under(staging) == []
    # Offline, from the remote folder as a cache: identical, not one request.
    total = server.total()
    offline = run(make_config(warc_cache=[str(archive)], offline=True), urls, AS_REMOTE)
    assert server.total() == total
    for path in ARCHIVED_KINDS:
        assert offline[server.url(path)] == first[server.url(path)], path


def test_remote_foreign_warc_is_scanned_in_memory_and_replayed(tmp_path):
    cache = tmp_path / "bucket" / "sample"
    write_sample_warc(cache / "sample-web.warc.gz")
    pages = {p.url: p for p in sample_pages()}
    urls = sorted(pages)
    out = run(make_config(warc_cache=[str(cache)], offline=True), urls, AS_REMOTE)
    assert not (cache / "index").exists()  # nothing written into someone else's folder
    for url in urls:
        verdict, page = _resolve(pages, url)
        got = out[url]
        if verdict == "ok":
            assert not isinstance(got, Reject), (url, got)
            assert got["html"] == page.body.decode("utf-8")
            assert got["fetched_at"] == "2018-02-01T00:00:00Z"
        else:
            assert isinstance(got, Reject) and got.reason == verdict, (url, got)
    assert ArchiveIndex.load([str(cache)], store=AS_REMOTE).scanned == ["sample-web.warc.gz"]


def test_a_failed_publication_is_retried_at_the_next_flush(server, tmp_path):
    archive, staging = tmp_path / "bucket", tmp_path / "staging"
    store = CountingStore(fail=1)
    config = make_config(warc_dir=str(archive), warc_staging=str(staging), warc_max_records=2)
    with Fetcher(config, store) as fetcher:
        rows = list(fetcher.fetch_many([server.url(f"/page/{i}") for i in range(4)]))
        # the file whose publication failed waits here, finished
        assert any(p.name.endswith(".warc.gz") for p in files_under(staging))
        fetcher.flush()
        assert files_under(staging) == []
    assert all(not isinstance(r, Reject) for r in rows)
    published = sorted(p.name for p in archive.glob("*.warc.gz"))
    assert {r["warc_file"] for r in rows} <= set(published)
    assert sorted(n for n in store.published if n.endswith(".gz")) == published


def test_a_local_archive_is_written_in_place_without_copies(server, tmp_path):
    store = CountingStore()
    store.force_remote = False
    run(make_config(warc_dir=str(tmp_path), warc_staging=str(tmp_path / "staging")),
        [server.url("/fine")], store)
    assert len(list(tmp_path.glob("*.warc.gz"))) == 1 and store.published == []
    assert not (tmp_path / "staging").exists()


def test_a_remote_folder_without_a_store_is_a_clear_error():
    assert ArchiveStore().is_remote("gs://bucket/warc")
    with pytest.raises(RemoteArchiveError, match="gs://bucket/warc.*archive store"):
        Fetcher(make_config(warc_cache=["gs://bucket/warc"])).fetch_one("http://x.test/")


def test_an_index_hash_collision_never_replays_another_urls_page(tmp_path, monkeypatch):
    """Two URLs whose index keys share a hash: the record found is checked, not trusted."""
    from webtext_pipeline.fetch import packed_index

    cache = tmp_path / "sample"
    write_sample_warc(cache / "sample-web.warc.gz")
    stranger = "http://never-archived.example/page"
    monkeypatch.setattr(packed_index, "key_hash", lambda key: 7)  # every key collides
    out = run(make_config(warc_cache=[str(cache)], offline=True), [stranger])
    assert isinstance(out[stranger], Reject) and out[stranger].reason == "not_in_archive"
