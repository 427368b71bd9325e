"""The fetch stage against a real misbehaving server on 127.0.0.1: one test per page kind.

Every test uses tiny timeouts and caps so the whole module runs in seconds.
The server counts requests per path, so tests assert how often a URL was
asked for (retries, robots.txt once, nothing after a guard refusal).
"""

from __future__ import annotations

import pickle
import re
import socket
import time
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from webserver import CP1252_TEXT, FINE_TEXT, SJIS_TEXT, WebServer

from webtext_pipeline.fetch import FETCHED_COLUMNS, FetchConfig, Fetcher
from webtext_pipeline.fetch import guard as guard_module
from webtext_pipeline.records import FETCH_REASONS, FETCHED_SCHEMA, Reject


def make_config(**overrides) -> FetchConfig:
    """Test settings: loopback allowed, no politeness delay, tiny timeouts and caps."""
    settings = dict(
        allow_private_addresses=True, per_host_delay=0.0, per_host_concurrency=8,
        concurrency=8, connect_timeout=1.0, read_timeout=0.5, deadline=1.5,
        max_bytes=256 * 1024, max_decoded_bytes=1 << 20, retries=2, backoff_base=0.01,
        backoff_max=0.05, retry_after_max=2.0, seed=0, respect_robots=True,
    )
    settings.update(overrides)
    return FetchConfig(**settings)


@pytest.fixture
def server():
    with WebServer() as web:
        yield web


def fetch(urls, **overrides):
    """Fetch `urls` with the test config; outputs keyed by URL (each must appear once)."""
    with Fetcher(make_config(**overrides)) as fetcher:
        outputs = list(fetcher.fetch_many([{"url": u} for u in urls]))
    assert len(outputs) == len(urls)
    keyed = {}
    for out in outputs:
        key = out.key if isinstance(out, Reject) else out["url"]
        keyed[key] = out
    return keyed


def fetch_one(url: str, **overrides):
    return fetch([url], **overrides)[url]


def assert_reject(out, reason: str, detail: str = "") -> None:
    assert isinstance(out, Reject), f"expected {reason}, got a fetched row for {out['url']}"
    assert out.stage == "fetch"
    assert out.reason == reason, (out.reason, out.detail)
    assert detail in out.detail
    assert reason in FETCH_REASONS or re.fullmatch(r"http_\d{3}", reason)


# --- pages that work ---------------------------------------------------------------


def test_fine_page_row_matches_schema_and_passes_link_columns(server, tmp_path):
    link = {"url": server.url("/fine"), "id": "abc123", "domain": "127.0.0.1", "score": 7,
            "n_posts": 2, "subreddits": ["news", "science"], "created_utc": 1500000000,
            "title": "A title", "extra": "ignored"}
    with Fetcher(make_config(warc_dir=str(tmp_path))) as fetcher:
        [row] = list(fetcher.fetch_many([link]))
    assert not isinstance(row, Reject)
    assert tuple(row) == FETCHED_COLUMNS == tuple(FETCHED_SCHEMA.names)
    for key in ("url", "id", "domain", "score", "n_posts", "subreddits", "created_utc", "title"):
        assert row[key] == link[key]
    assert row["final_url"] == link["url"]
    assert row["http_status"] == 200
    assert row["content_type"] == "text/html; charset=utf-8"
    assert (row["charset"], row["charset_source"]) == ("utf-8", "header")
    assert FINE_TEXT in row["html"]
    assert row["n_bytes"] == len(row["html"].encode())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["fetched_at"])
    assert re.fullmatch(r"webtext-[0-9a-f]{12}-00000\.warc\.gz", row["warc_file"])
    assert row["warc_offset"] > 0 and row["warc_length"] > 0
    assert row["elapsed_ms"] >= 0
    assert server.count("/fine") == 1 and server.count("/robots.txt") == 1


def test_rows_write_to_parquet_with_the_schema(server, tmp_path):
    urls = [server.url(p) for p in ("/fine", "/gzip", "/cp1252-meta", "/redirect/chain/2")]
    with Fetcher(make_config()) as fetcher:
        rows = list(fetcher.fetch_many(urls))  # bare URLs are rows too
    table = pa.Table.from_pylist(rows, schema=FETCHED_SCHEMA)
    pq.write_table(table, tmp_path / "fetched.parquet")
    assert pq.read_table(tmp_path / "fetched.parquet").to_pylist() == rows


def test_link_row_with_only_a_url_gets_neutral_columns(server):
    row = fetch_one(server.url("/fine"))
    assert row["id"] and row["domain"] == "127.0.0.1" and row["score"] == 0
    assert row["subreddits"] == [] and row["title"] == ""


def test_gzip_page_is_decoded(server):
    row = fetch_one(server.url("/gzip"))
    assert FINE_TEXT in row["html"]
    assert row["n_bytes"] == len(row["html"].encode())


def test_no_content_type_is_sniffed_as_html(server):
    row = fetch_one(server.url("/no-content-type"))
    assert row["content_type"] == "" and FINE_TEXT in row["html"]


def test_cookie_set_on_a_redirect_is_sent_on_the_next_hop(server):
    row = fetch_one(server.url("/cookie/start"))
    assert row["final_url"] == server.url("/cookie/check")


# --- charsets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "charset", "source", "text"),
    [
        ("/cp1252-meta", "cp1252", "meta", CP1252_TEXT),
        ("/sjis-meta", "cp932", "meta", SJIS_TEXT),
        ("/wrong-charset", "cp1252", "meta", CP1252_TEXT),
        ("/wrong-charset-no-meta", "cp932", "detected", SJIS_TEXT),
        ("/latin1-header-utf8-body", "utf-8", "detected", FINE_TEXT),
        ("/no-charset", "utf-8", "detected", FINE_TEXT),
    ],
)
def test_charset_sources(server, path, charset, source, text):
    row = fetch_one(server.url(path))
    assert (row["charset"], row["charset_source"]) == (charset, source)
    assert text in row["html"]


# --- rejects, one per page kind ---------------------------------------------------------


def test_slow_answer_times_out(server):
    started = time.monotonic()
    out = fetch_one(server.url("/slow?s=5"), read_timeout=0.3)
    assert_reject(out, "timeout")
    assert time.monotonic() - started < 1.5
    assert server.count("/slow?s=5") == 1  # read timeouts are not retried


def test_drip_fed_body_is_stopped_by_the_deadline(server):
    # One byte every 0.1 s never trips the 0.5 s read timeout; only the deadline stops it.
    started = time.monotonic()
    out = fetch_one(server.url("/drip?n=1000&every=0.1"), deadline=0.8)
    assert_reject(out, "timeout", "deadline")
    assert time.monotonic() - started < 1.6


def test_404_is_rejected_once(server):
    assert_reject(fetch_one(server.url("/missing")), "http_404")
    assert server.count("/missing") == 1


def test_500_then_fine_is_retried(server):
    row = fetch_one(server.url("/flaky"))
    assert FINE_TEXT in row["html"]
    assert server.count("/flaky") == 2


def test_persistent_503_after_retries(server):
    assert_reject(fetch_one(server.url("/always-500"), retries=2), "http_503")
    assert server.count("/always-500") == 3


def test_429_waits_for_retry_after(server):
    started = time.monotonic()
    row = fetch_one(server.url("/busy?after=1"))
    assert FINE_TEXT in row["html"]
    assert server.count("/busy?after=1") == 2
    assert time.monotonic() - started >= 1.0


def test_429_with_retry_after_over_the_cap_ends_at_once(server):
    assert_reject(fetch_one(server.url("/busy-long")), "http_429")
    assert server.count("/busy-long") == 1


def test_connection_reset_mid_body_is_retried_then_rejected(server):
    assert_reject(fetch_one(server.url("/reset"), retries=1), "connect_error", "mid-body")
    assert server.count("/reset") == 2


def test_a_response_that_is_not_http(server):
    assert_reject(fetch_one(server.url("/garbage"), retries=1), "connect_error")
    assert server.count("/garbage") == 2


def test_https_to_a_plain_http_server_is_a_tls_failure(server):
    url = f"https://127.0.0.1:{server.port}/fine"
    assert_reject(fetch_one(url, respect_robots=False), "connect_error", "TLS")
    assert_reject(fetch_one(url, allow_private_addresses=False), "blocked_address")


def test_connection_refused(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_reject(fetch_one(f"http://127.0.0.1:{port}/", retries=1), "connect_error")


def test_redirect_chain_is_followed_hop_by_hop(server):
    row = fetch_one(server.url("/redirect/chain/3"))
    assert row["url"] == server.url("/redirect/chain/3")
    assert row["final_url"] == server.url("/redirect/chain/0")
    assert [server.count(f"/redirect/chain/{n}") for n in range(4)] == [1, 1, 1, 1]


def test_redirect_loop(server):
    assert_reject(fetch_one(server.url("/redirect/loop/a")), "redirect_loop")
    assert server.count("/redirect/loop/a") == 1 and server.count("/redirect/loop/b") == 1


def test_too_many_redirects(server):
    assert_reject(fetch_one(server.url("/redirect/chain/5"), max_redirects=3),
                  "too_many_redirects")
    assert server.count("/redirect/chain/1") == 0


def test_redirect_without_location(server):
    assert_reject(fetch_one(server.url("/redirect/none")), "http_302", "Location")


def test_redirect_to_another_scheme_is_a_bad_url(server):
    assert_reject(fetch_one(server.url("/redirect/to?url=ftp://example.com/x")), "bad_url")


@pytest.mark.parametrize("path", ["/huge?mb=2", "/huge-chunked?mb=2"])
def test_huge_body_is_too_large(server, path):
    assert_reject(fetch_one(server.url(path)), "too_large")


def test_gzip_bomb_stops_at_the_decoded_cap(server):
    assert_reject(fetch_one(server.url("/gzip-bomb")), "too_large", "decoded body over")


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/pdf-as-html", "application/pdf"),
        ("/jpeg-as-html", "image/jpeg"),
        ("/pdf", "Content-Type application/pdf"),
        ("/text", "Content-Type text/plain"),
        ("/no-content-type-binary", "image/png"),
    ],
)
def test_not_html(server, path, detail):
    assert_reject(fetch_one(server.url(path)), "not_html", detail)


@pytest.mark.parametrize("url", ["ftp://example.com/", "not a url", "", "http://", "https:///x"])
def test_bad_urls(url):
    assert_reject(fetch([url])[url], "bad_url")


def test_row_without_url_is_a_bad_url():
    with Fetcher(make_config()) as fetcher:
        [out] = list(fetcher.fetch_many([{"id": "x"}]))
    assert_reject(out, "bad_url")


def test_dns_error(server, monkeypatch):
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(guard_module.socket, "getaddrinfo", resolver)
    assert_reject(fetch_one("http://no-such-host.invalid/page"), "dns_error")


# --- robots.txt -------------------------------------------------------------------------


def test_robots_disallowed_path_is_never_requested():
    with WebServer(robots="User-agent: *\nDisallow: /private/\n") as web:
        outs = fetch([web.url("/private/a"), web.url("/private/b"), web.url("/fine")])
        assert_reject(outs[web.url("/private/a")], "robots_disallowed", "/private/")
        assert_reject(outs[web.url("/private/b")], "robots_disallowed")
        assert not isinstance(outs[web.url("/fine")], Reject)
        assert web.count("/private/a") == web.count("/private/b") == 0
        assert web.count("/robots.txt") == 1


def test_robots_group_for_our_product_token_wins():
    rules = "User-agent: *\nDisallow:\n\nUser-agent: WebText\nDisallow: /fine\n"
    with WebServer(robots=rules) as web:
        assert_reject(fetch_one(web.url("/fine")), "robots_disallowed")
        assert web.count("/fine") == 0


def test_robots_fetched_once_per_origin_across_batches():
    with WebServer(robots="User-agent: *\nAllow: /\n") as web, Fetcher(make_config()) as fetcher:
        for batch in range(3):
            rows = [{"url": web.url(f"/page/{batch}-{i}")} for i in range(5)]
            assert all(not isinstance(o, Reject) for o in fetcher.fetch_many(rows))
        assert web.count("/robots.txt") == 1


def test_robots_404_allows_everything():
    with WebServer(robots=None) as web:
        assert not isinstance(fetch_one(web.url("/private/x")), Reject)


def test_robots_503_disallows_everything_and_no_page_is_requested():
    with WebServer(robots="oops", robots_status=503) as web:
        outs = fetch([web.url("/fine"), web.url("/page/1")], retries=1)
        for out in outs.values():
            assert_reject(out, "robots_disallowed", "http_503")
        assert web.count("/fine") == 0 and web.count("/robots.txt") == 2


def test_robots_crawl_delay_spaces_requests():
    with WebServer(robots="User-agent: *\nCrawl-delay: 1\n") as web:
        fetch([web.url(f"/page/{i}") for i in range(3)], max_crawl_delay=0.25)
        starts = sorted(t for t, _host, path in web.log if path.startswith("/page/"))
        assert min(b - a for a, b in zip(starts, starts[1:], strict=False)) >= 0.2


def test_robots_ignored_when_disabled():
    with WebServer(robots="User-agent: *\nDisallow: /\n") as web:
        assert not isinstance(fetch_one(web.url("/fine"), respect_robots=False), Reject)
        assert web.count("/robots.txt") == 0


def test_robots_unreachable_rejects_pages_with_the_same_reason(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = fetch_one(f"http://127.0.0.1:{port}/x", retries=0)
    assert_reject(out, "connect_error", "robots.txt")


# --- the SSRF guard (allow_private_addresses off) ---------------------------------------------


def guarded(**overrides) -> dict:
    return dict(allow_private_addresses=False, **overrides)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]", "127.1"],
)
def test_guard_refuses_loopback_in_every_spelling(server, host):
    url = f"http://{host}:{server.port}/fine"
    assert_reject(fetch_one(url, **guarded()), "blocked_address")
    assert server.total() == 0  # not even robots.txt


def test_guard_refuses_a_redirect_from_an_allowed_host_to_private_addresses(server):
    # 127.0.0.1 is allow-listed as if it were a public site; what it redirects to is not.
    targets = [
        f"http://127.0.0.2:{server.port}/fine",  # other loopback (nothing listens there)
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata: never connected to
        "http://10.0.0.1/admin",
        f"http://localhost:{server.port}/fine",  # a name for 127.0.0.1 is fine: allow-listed
    ]
    urls = [server.url(f"/redirect/to?url={t}") for t in targets]
    outs = fetch(urls, **guarded(allowed_networks=("127.0.0.1/32",)))
    for url in urls[:3]:
        assert_reject(outs[url], "blocked_address")
    assert not isinstance(outs[urls[3]], Reject)


def test_guard_refuses_a_name_with_any_private_answer(server, monkeypatch):
    # A resolver answering one public and one private address (a rebinding trick) is refused
    # before any connection: every address must be public.
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host == "mixed.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(guard_module.socket, "getaddrinfo", resolver)
    assert_reject(fetch_one(f"http://mixed.example:{server.port}/fine", **guarded()),
                  "blocked_address", "127.0.0.1")
    assert server.total() == 0


def test_guard_connects_to_the_address_it_checked(server, monkeypatch):
    # The name resolves once per connection: a resolver that would answer differently on a
    # second lookup (DNS rebinding) is never asked twice for one connection.
    real = socket.getaddrinfo
    asked = Counter()

    def resolver(host, port, *args, **kwargs):
        if host == "rebind.example":
            asked[host] += 1
            address = "127.0.0.1" if asked[host] == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(guard_module.socket, "getaddrinfo", resolver)
    row = fetch_one(f"http://rebind.example:{server.port}/fine",
                    **guarded(allowed_networks=("127.0.0.1/32",), respect_robots=False))
    assert not isinstance(row, Reject)
    assert asked["rebind.example"] == 1


# --- scheduling, politeness, bookkeeping -------------------------------------------------------


def test_counts_balance_on_a_mixed_batch(server):
    paths = ["/fine", "/missing", "/pdf-as-html", "/redirect/chain/2", "/redirect/loop/a",
             "/gzip", "/flaky?k=1", "/huge?mb=1", "/no-charset", "/text"] * 3
    rows = [{"url": server.url(p)} for p in paths] + [{"url": "bad"}, {"url": ""}, {}]
    with Fetcher(make_config()) as fetcher:
        outs = list(fetcher.fetch_many(rows))
    assert len(outs) == len(rows)
    keys = Counter(o.key if isinstance(o, Reject) else o["url"] for o in outs)
    assert keys == Counter(str(r.get("url", "")) for r in rows)
    fetched = sum(1 for o in outs if not isinstance(o, Reject))
    rejected = Counter(o.reason for o in outs if isinstance(o, Reject))
    assert fetched + sum(rejected.values()) == len(rows)
    assert fetched == 15  # fine, chain, gzip, flaky, no-charset x 3
    assert fetcher.stats["fetched"] == fetched


def test_per_host_delay_and_concurrency_are_respected(server):
    urls = [server.url(f"/page/{i}") for i in range(5)]
    fetch(urls, per_host_delay=0.15, per_host_concurrency=1, respect_robots=False)
    starts = sorted(t for t, _host, path in server.log if path.startswith("/page/"))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == 5 and min(gaps) >= 0.12  # (arrival times jitter a little)


def test_a_hot_host_does_not_stall_other_hosts(server):
    # Two host names for the same server: the politeness key is the host name.
    hot = [server.url(f"/page/hot-{i}") for i in range(8)]
    cold = [server.url(f"/page/cold-{i}", host="localhost") for i in range(4)]
    outs = fetch(hot + cold, per_host_delay=0.1, per_host_concurrency=1, concurrency=2,
                 respect_robots=False)
    assert all(not isinstance(o, Reject) for o in outs.values())
    cold_starts = [t for t, host, _ in server.log if host.startswith("localhost")]
    hot_starts = [t for t, host, _ in server.log if host.startswith("127.0.0.1")]
    # The cold host starts at once and is done while the hot one still waits its turns
    # (stalled behind it, it would start only after the 8th hot request, ~0.7 s in).
    assert min(cold_starts) - min(hot_starts) < 0.3
    assert max(cold_starts) < max(hot_starts) - 0.2


def test_stopping_early_leaves_the_fetcher_usable(server):
    with Fetcher(make_config()) as fetcher:
        outputs = fetcher.fetch_many([{"url": server.url(f"/page/{i}")} for i in range(20)])
        next(outputs)
        outputs.close()
        again = list(fetcher.fetch_many([{"url": server.url("/fine")}]))
    assert len(again) == 1 and not isinstance(again[0], Reject)


def test_fetcher_pickles_as_config_only(server):
    fetcher = Fetcher(make_config())
    assert not isinstance(fetcher.fetch_one(server.url("/fine")), Reject)
    clone = pickle.loads(pickle.dumps(fetcher))
    assert clone.config == fetcher.config
    assert not isinstance(clone.fetch_one(server.url("/gzip")), Reject)
    clone.close()
    fetcher.close()


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="concurrency"):
        FetchConfig(concurrency=0)
    assert FetchConfig(warc_cache=["a", "b"]).warc_cache == ("a", "b")
    assert FetchConfig().user_agent.startswith("webtext/0.1 (+https://")
