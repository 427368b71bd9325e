"""The fetch stage as a Beam job, against a real server on 127.0.0.1 (no mocks).

One online run (module fixture) is shared by most tests: its books balance,
its reasons are the expected ones, its WARC files read back with warcio, a
rerun is reused, a changed option is not (and replays instead of fetching),
and an offline replay of its WARC gives the same pages. Politeness is checked
across the whole job on the multi_processing DirectRunner.
"""

from __future__ import annotations

import argparse
import glob
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import replace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator
from webserver import CP1252_TEXT, FINE_TEXT, WebServer

from beam_jobs.fetch_job import (
    FileSystemsStore,
    config_fingerprint,
    host_bucket,
    layout,
    run_fetch,
)
from beam_jobs.files import InputError
from beam_jobs.options import pipeline_options
from webtext_pipeline.fetch import FetchConfig
from webtext_pipeline.fetch.commands import add_fetch_options, fetch_config, parse_size
from webtext_pipeline.records import FETCHED_SCHEMA, LINKS_SCHEMA, REJECTS_SCHEMA, stable_id
from webtext_pipeline.sample_web import sample_pages, write_sample_warc

ROBOTS = "User-agent: *\nDisallow: /private/\n"

# path -> expected reject reason (None: fetched)
PAGES = {
    "/fine": None,
    "/page/a": None,
    "/page/b": None,
    "/page/c": None,
    "/gzip": None,
    "/cp1252-meta": None,
    "/redirect/chain/2": None,
    "/missing": "http_404",
    "/pdf": "not_html",
    "/huge?mb=1": "too_large",
    "/redirect/loop/a": "redirect_loop",
    "/redirect/chain/3": "too_many_redirects",
    "/private/secret": "robots_disallowed",
    "/slow?s=5": "timeout",
}
BAD_URL = "not a url"


def make_config(**overrides) -> FetchConfig:
    settings = dict(
        allow_private_addresses=True, per_host_delay=0.0, per_host_concurrency=8,
        concurrency=16, connect_timeout=1.0, read_timeout=0.5, deadline=1.5,
        max_bytes=256 * 1024, max_decoded_bytes=1 << 20, max_redirects=2, retries=1,
        backoff_base=0.01, backoff_max=0.05, retry_after_max=1.0, seed=0,
    )
    settings.update(overrides)
    return FetchConfig(**settings)


def direct(*flags: str):
    return pipeline_options(["--runner=DirectRunner", *flags])


def link_row(url: str, **overrides) -> dict:
    row = dict(url=url, url_key=url, id=stable_id(url), domain="127.0.0.1", score=5,
               score_sum=5, n_posts=1, post_ids=["p1"], subreddits=["news"],
               created_utc=1_500_000_000, title=f"title of {url}")
    row.update(overrides)
    return row


def write_links(directory, urls: list[str], files: int = 2) -> str:
    """The links stage's output shape: LINKS_SCHEMA rows over `files` part files."""
    os.makedirs(directory, exist_ok=True)
    for index in range(files):
        part = [link_row(u) for u in urls[index::files]]
        table = pa.Table.from_pylist(part, schema=LINKS_SCHEMA)
        pq.write_table(table, os.path.join(directory, f"part-{index:05d}-of-{files:05d}.parquet"))
    return str(directory)


def read_rows(pattern: str) -> list[dict]:
    rows: list[dict] = []
    for path in sorted(glob.glob(pattern)):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def outputs(out: str) -> tuple[dict[str, dict], dict[str, dict]]:
    fetched = {r["url"]: r for r in read_rows(os.path.join(out, "fetched", "part-*.parquet"))}
    rejects = {r["key"]: r for r in read_rows(os.path.join(out, "rejects", "fetch-part-*.parquet"))}
    return fetched, rejects


@pytest.fixture(scope="module")
def server():
    with WebServer(robots=ROBOTS) as web:
        yield web


@pytest.fixture(scope="module")
def online(server, tmp_path_factory):
    """One online run: (out dir, links dir, config, summary, fetched rows, reject rows)."""
    base = tmp_path_factory.mktemp("fetch-online")
    urls = [server.url(path) for path in PAGES] + [BAD_URL]
    links = write_links(base / "links", urls)
    out = str(base / "out")
    config = make_config(warc_dir=os.path.join(out, "warc"))
    summary = run_fetch(links, out, config, direct())
    fetched, rejects = outputs(out)
    return out, links, config, summary, fetched, rejects


# --- the online run ---------------------------------------------------------------------


def test_books_balance_and_reasons_are_the_expected_ones(online, server):
    _out, _links, _config, summary, fetched, rejects = online
    assert not summary.reused and summary.balanced
    assert summary.rows_in == len(PAGES) + 1
    assert summary.rows_out == len(fetched) == sum(v is None for v in PAGES.values())
    expected = Counter(v for v in PAGES.values() if v) + Counter(["bad_url"])
    assert summary.rejects == dict(expected)
    for path, reason in PAGES.items():
        url = server.url(path)
        if reason is None:
            assert url in fetched, path
        else:
            assert rejects[url]["reason"] == reason, (path, rejects.get(url))
            assert rejects[url]["stage"] == "fetch"
    assert rejects[BAD_URL]["reason"] == "bad_url"
    assert server.count("/robots.txt") == 1  # once per origin, for the whole job


def test_fetched_rows_carry_links_columns_and_pages(online, server):
    out, _links, _config, _summary, fetched, _rejects = online
    paths = sorted(glob.glob(os.path.join(out, "fetched", "part-*.parquet")))
    assert paths
    for path in paths:
        table = pq.read_table(path)
        assert table.schema.names == FETCHED_SCHEMA.names
        urls = table.column("url").to_pylist()
        assert urls == sorted(urls)
    for path in glob.glob(os.path.join(out, "rejects", "fetch-part-*.parquet")):
        assert pq.read_table(path).schema.names == REJECTS_SCHEMA.names
    fine = fetched[server.url("/fine")]
    assert FINE_TEXT in fine["html"] and fine["http_status"] == 200
    assert fine["id"] == stable_id(server.url("/fine"))
    assert fine["subreddits"] == ["news"] and fine["title"].startswith("title of")
    chain = fetched[server.url("/redirect/chain/2")]
    assert chain["final_url"] == server.url("/redirect/chain/0")
    assert CP1252_TEXT in fetched[server.url("/cp1252-meta")]["html"]  # decoded by its meta tag
    assert fetched[server.url("/gzip")]["html"].startswith("<!doctype html>")


def test_warc_files_read_back_with_warcio(online, server):
    out, _links, _config, _summary, fetched, _rejects = online
    warc_dir = os.path.join(out, "warc")
    files = sorted(glob.glob(os.path.join(warc_dir, "*.warc.gz")))
    assert files, os.listdir(warc_dir)
    assert not glob.glob(os.path.join(warc_dir, "*.open"))
    assert glob.glob(os.path.join(warc_dir, "index", "*.parquet"))
    responses = {}
    for path in files:
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle):
                if record.rec_type == "response":
                    url = record.rec_headers.get_header("WARC-Target-URI")
                    responses[url] = record.http_headers.get_statuscode()
    assert responses[server.url("/fine")] == "200"
    assert responses[server.url("/missing")] == "404"
    assert responses[server.url("/robots.txt")] == "200"
    for row in fetched.values():
        assert os.path.exists(os.path.join(warc_dir, row["warc_file"]))


def test_rerun_is_reused_and_a_changed_option_replays(online, server):
    out, links, config, first, fetched, _rejects = online
    fine_requests = server.count("/fine")
    again = run_fetch(links, out, config, direct())
    assert again.reused and again.fingerprint == first.fingerprint
    assert (again.rows_out, again.rejects) == (first.rows_out, first.rejects)
    changed = run_fetch(links, out, replace(config, max_bytes=200 * 1024), direct())
    assert not changed.reused and changed.fingerprint != first.fingerprint
    assert (changed.rows_out, changed.rejects) == (first.rows_out, first.rejects)
    assert server.count("/fine") == fine_requests  # replayed from OUT/warc, not fetched
    refetched, _ = outputs(out)
    assert {u: r["html"] for u, r in refetched.items()} == {
        u: r["html"] for u, r in fetched.items()
    }
    # Politeness and concurrency do not change results: the fingerprint ignores them.
    assert config_fingerprint(replace(config, concurrency=3, per_host_delay=5.0)) == (
        config_fingerprint(config)
    )


def test_offline_replay_gives_the_same_pages(online, server, tmp_path):
    out, links, _config, _summary, fetched, rejects = online
    before = server.total()
    replay_out = str(tmp_path / "replay")
    config = make_config(offline=True, warc_cache=(os.path.join(out, "warc"),),
                         warc_dir=os.path.join(replay_out, "warc"))
    summary = run_fetch(links, replay_out, config, direct())
    assert summary.balanced and server.total() == before  # no request reached the server
    replayed, replay_rejects = outputs(replay_out)
    columns = ("html", "final_url", "http_status", "content_type", "charset", "n_bytes")
    assert {u: tuple(r[c] for c in columns) for u, r in replayed.items()} == {
        u: tuple(r[c] for c in columns) for u, r in fetched.items()
    }
    # The timed-out page was never archived: offline it is not_in_archive.
    assert replay_rejects[server.url("/slow?s=5")]["reason"] == "not_in_archive"
    for key, row in rejects.items():
        if row["reason"] != "timeout":
            assert replay_rejects[key]["reason"] == row["reason"], key


def test_offline_against_the_sample_web(tmp_path):
    cache = tmp_path / "sample-warc"
    write_sample_warc(cache / "sample.warc.gz")
    known = [p.url for p in sample_pages() if p.status == 200 and "html" in p.content_type][:5]
    unknown = ["https://unknown.example.com/a", "https://nowhere.example.org/b?x=1"]
    links = write_links(tmp_path / "links", known + unknown, files=1)
    out = str(tmp_path / "out")
    config = FetchConfig(offline=True, warc_cache=(str(cache),),
                         warc_dir=os.path.join(out, "warc"))
    summary = run_fetch(links, out, config, direct())
    fetched, rejects = outputs(out)
    assert summary.balanced and set(fetched) == set(known)
    assert {k: r["reason"] for k, r in rejects.items()} == dict.fromkeys(unknown, "not_in_archive")


def test_missing_links_and_cache_stop_before_any_work(tmp_path):
    with pytest.raises(InputError, match="no \\*.parquet files"):
        run_fetch(str(tmp_path), str(tmp_path / "out"), FetchConfig(), direct())
    links = write_links(tmp_path / "links", ["https://example.com/"], files=1)
    with pytest.raises(InputError, match="--warc-cache .*: not a directory"):
        run_fetch(links, str(tmp_path / "out"),
                  FetchConfig(warc_cache=(str(tmp_path / "nope"),)), direct())


# --- a remote OUT/warc (the remote code path, forced on a local folder) ------------------


def test_remote_warc_folder_is_published_and_replayed(server, tmp_path):
    store = FileSystemsStore(force_remote=True)  # OUT/warc handled as if it were gs://
    paths = ["/fine", "/page/a", "/missing", "/redirect/chain/2"]
    urls = [server.url(p) for p in paths]
    links = write_links(tmp_path / "links", urls, files=1)
    out, staging = str(tmp_path / "out"), tmp_path / "staging"
    warc_dir = os.path.join(out, "warc")
    config = make_config(warc_dir=warc_dir, warc_staging=str(staging))
    before = server.total()
    first = run_fetch(links, out, config, direct(), store=store)
    assert first.balanced and server.total() > before
    warcs = sorted(glob.glob(os.path.join(warc_dir, "*.warc.gz")))
    assert warcs and not glob.glob(os.path.join(warc_dir, "*.open"))
    assert sorted(os.listdir(os.path.join(warc_dir, "index"))) == [
        os.path.basename(w) + ".parquet" for w in warcs]
    assert [p for p in staging.rglob("*") if p.is_file()] == []
    fetched, _ = outputs(out)
    for row in fetched.values():
        assert os.path.exists(os.path.join(warc_dir, row["warc_file"]))
    # A rerun with another result option replays from OUT/warc: no request at all.
    total = server.total()
    again = run_fetch(links, out, replace(config, max_bytes=200 * 1024), direct(), store=store)
    assert not again.reused and server.total() == total
    assert (again.rows_out, again.rejects) == (first.rows_out, first.rejects)
    replayed, _ = outputs(out)
    assert {u: r["html"] for u, r in replayed.items()} == {
        u: r["html"] for u, r in fetched.items()}


def test_remote_warc_cache_is_checked_and_accepted_by_the_options(tmp_path):
    store = FileSystemsStore(force_remote=True)
    links = write_links(tmp_path / "links", ["https://example.com/"], files=1)
    with pytest.raises(InputError, match="--warc-cache .*: no WARC files"):
        run_fetch(links, str(tmp_path / "out"),
                  FetchConfig(warc_cache=(str(tmp_path / "empty"),)), direct(), store=store)
    config = fetch_config(parse(["--warc-cache", "gs://bucket/warcs", "--offline"]),
                          "gs://bucket/webtext")
    assert config.warc_cache == ("gs://bucket/warcs",)
    assert config.warc_dir == "gs://bucket/webtext/warc"


def test_the_build_keeps_a_remote_warc_folder():
    from dataclasses import dataclass

    from beam_jobs.full_pipeline import prepare_fetch

    @dataclass(frozen=True)
    class Plan:
        out: str
        fetch: FetchConfig

    lines: list[str] = []
    plan = prepare_fetch(Plan("gs://bucket/webtext", FetchConfig()), lines.append)
    assert plan.fetch.warc_dir == "gs://bucket/webtext/warc"  # not the worker's /tmp
    assert "published to gs://bucket/webtext/warc" in lines[0]


# --- politeness across the job ----------------------------------------------------------


def _tracking_server(hosts: list[str]):
    """A server whose /conc route records the most requests in flight per host."""
    web = WebServer(addresses=hosts)
    lock = threading.Lock()
    active: Counter = Counter()
    peak: Counter = Counter()
    starts: dict[str, list[float]] = defaultdict(list)

    @web.route("/conc")
    def conc(h) -> None:
        host = h.headers.get("Host", "").split(":")[0]
        with lock:
            active[host] += 1
            peak[host] = max(peak[host], active[host])
            starts[host].append(time.monotonic())
        h.sleep(0.5)  # longer than the per-host delay, so two overlap
        with lock:
            active[host] -= 1
        h.html("<html><head><title>c</title></head><body><p>conc</p></body></html>")

    return web, peak, starts


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_per_host_politeness_holds_across_the_job(tmp_path, mode):
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    web, peak, starts = _tracking_server(hosts)
    with web:
        urls = [web.url(f"/conc?i={i}", host=hosts[i % 3]) for i in range(36)]
        links = write_links(tmp_path / "links", urls, files=3)
        out = str(tmp_path / "out")
        config = make_config(per_host_concurrency=2, per_host_delay=0.2, concurrency=8,
                             respect_robots=False, deadline=10.0, read_timeout=5.0,
                             warc_dir=os.path.join(out, "warc"))
        flags = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
        options = direct(*flags) if mode == "multi_processing" else direct()
        # batch_size 4: many batches and buckets, so workers really share the hosts' keys
        summary = run_fetch(links, out, config, options, batch_size=4)
    assert summary.balanced and summary.rows_out == 36, summary
    assert set(peak) == set(hosts)
    assert max(peak.values()) == 2, dict(peak)  # the limit was reached, never passed
    for host, times in starts.items():
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # seen at the server, so with some jitter (a loaded CI machine delays arrivals by
        # tens of ms): at least half the delay, never two at once
        assert min(gaps) >= 0.1, (host, min(gaps))


# --- unit checks ------------------------------------------------------------------------


def test_host_bucket_is_stable_per_host():
    a = host_bucket({"url": "https://Example.com/a"}, 64)
    assert a == host_bucket({"url": "https://example.com:443/b?c"}, 64)
    assert 0 <= host_bucket({"url": "::not a url"}, 64) < 64
    assert host_bucket({"url": "http://[::1"}, 7) in range(7)


def test_layout_scales_with_rows():
    assert layout(0) == {"buckets": 1, "shards": 1, "reject_shards": 1}
    big = layout(1_000_000)
    assert big["shards"] == 500 and big["buckets"] == 2000 and big["reject_shards"] == 10
    assert layout(10**9)["buckets"] == 4096


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_fetch_options(parser)
    return parser.parse_args(argv)


def test_fetch_config_defaults_and_mapping(tmp_path):
    config = fetch_config(parse([]), str(tmp_path))
    assert config == replace(FetchConfig(), warc_dir=os.path.join(str(tmp_path), "warc"))
    cache = tmp_path / "cache"
    cache.mkdir()
    config = fetch_config(parse([
        "--fetch-concurrency", "64", "--per-host-concurrency", "1", "--per-host-delay", "0.5",
        "--ignore-robots", "--allow-private-addresses", "--user-agent", "bot/1.0",
        "--max-page-bytes", "2M", "--fetch-timeout", "5", "--max-redirects", "3",
        "--warc-cache", str(cache), "--offline",
    ]), str(tmp_path))
    assert (config.concurrency, config.per_host_concurrency, config.per_host_delay) == (64, 1, 0.5)
    assert not config.respect_robots and config.allow_private_addresses
    assert config.user_agent == "bot/1.0"
    assert (config.max_bytes, config.max_decoded_bytes) == (2 << 20, 8 << 20)
    assert (config.deadline, config.connect_timeout, config.read_timeout) == (5.0, 5.0, 5.0)
    assert config.max_redirects == 3 and config.warc_cache == (str(cache),) and config.offline


@pytest.mark.parametrize(("argv", "message"), [
    (["--fetch-concurrency", "0"], "--fetch-concurrency 0: must be 1 or more"),
    (["--per-host-concurrency", "-2"], "--per-host-concurrency -2: must be 1 or more"),
    (["--per-host-delay", "-1"], "--per-host-delay -1.0: must be 0 or more"),
    (["--per-host-delay", "nan"], "--per-host-delay nan: must be 0 or more"),
    (["--fetch-timeout", "0"], "--fetch-timeout 0.0: must be more than 0 seconds"),
    (["--max-redirects", "-1"], "--max-redirects -1: must be 0 or more"),
    (["--max-page-bytes", "5XB"], "--max-page-bytes 5XB: not a size (e.g. 5000000, 500K, 5M)"),
    (["--max-page-bytes", "0"], "--max-page-bytes 0: must be 1 byte or more"),
    (["--user-agent", " "], "--user-agent: must not be empty"),
    (["--user-agent", "bot\r\nX: y"], "must not contain control characters"),
    (["--warc-cache", "/no/such/dir"], "--warc-cache /no/such/dir: no such directory"),
    (["--offline"], "--offline: nothing to replay"),
])
def test_fetch_config_rejects_bad_options_in_one_line(tmp_path, argv, message):
    with pytest.raises(ValueError) as caught:
        fetch_config(parse(argv), str(tmp_path))
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_warc_cache_must_be_a_folder(tmp_path):
    path = write_sample_warc(tmp_path / "s.warc.gz")
    with pytest.raises(ValueError, match="is a file; give the folder"):
        fetch_config(parse(["--warc-cache", str(path)]), str(tmp_path))
    assert fetch_config(parse(["--warc-cache", str(tmp_path), "--offline"]), str(tmp_path))


def test_parse_size():
    assert parse_size("5000000") == 5_000_000
    assert parse_size("500K") == 500 * 1024
    assert parse_size("5MiB") == parse_size("5m") == 5 << 20
    assert parse_size("1.5G") == int(1.5 * (1 << 30))
    assert parse_size(123) == 123
    with pytest.raises(ValueError):
        parse_size("five")
