"""Unit tests of the fetch stage's pure parts: guard, URLs, content, charset, robots, politeness."""

from __future__ import annotations

import gzip
import ipaddress
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webserver import gzip_bomb

from webtext_pipeline.fetch.charset import UndecodableError, decode_html, resolve_label
from webtext_pipeline.fetch.client import retry_after_seconds
from webtext_pipeline.fetch.content import (
    BadEncoding,
    TooLarge,
    decode_body,
    header_verdict,
    looks_like_html,
    sniff_binary,
)
from webtext_pipeline.fetch.guard import AddressPolicy, BlockedAddress, address_problem
from webtext_pipeline.fetch.politeness import HostQueues
from webtext_pipeline.fetch.response import Failure, Page, Redirect, StoredResponse, interpret
from webtext_pipeline.fetch.robots import parse_robots, product_token, rules_for_status
from webtext_pipeline.fetch.urls import (
    BadUrl,
    normalize_url,
    origin_of,
    redirect_target,
    robots_url,
)

# --- guard ------------------------------------------------------------------------------------

BLOCKED = [
    "127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "100.64.0.1", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
    "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::1",
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
          "2a00:1450:4001:80b::200e"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_refused(address):
    assert address_problem(ipaddress.ip_address(address)) is not None
    assert AddressPolicy().problem(address) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None
    assert AddressPolicy().problem(address) is None


def test_policy_switches():
    assert AddressPolicy(allow_private=True).problem("127.0.0.1") is None
    listed = AddressPolicy(allowed_networks=("127.0.0.1/32",))
    assert listed.problem("127.0.0.1") is None and listed.problem("127.0.0.2") is not None
    with pytest.raises(BlockedAddress):
        AddressPolicy().check_literal("[::1]")
    AddressPolicy().check_literal("example.com")  # names are checked when resolved
    with pytest.raises(ValueError):
        AddressPolicy(allowed_networks=("not a network",))


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("http://Example.COM/a b#frag", "http://example.com/a%20b"),
        ("https://bücher.example/ü?q=1", "https://xn--bcher-kva.example/%C3%BC?q=1"),
        ("  http://example.com  ", "http://example.com/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_normalize_url(given, normal):
    assert normalize_url(given) == normal


@pytest.mark.parametrize(
    "bad", ["", "example.com/x", "ftp://example.com/", "javascript:alert(1)", "http://",
            "http://example.com:99999/", "http://exa mple.com/", "http://" + "a" * 9000]
)
def test_bad_urls(bad):
    with pytest.raises(BadUrl):
        normalize_url(bad)


def test_redirect_targets():
    base = "http://example.com/a/b?x=1"
    assert redirect_target(base, "c") == "http://example.com/a/c"
    assert redirect_target(base, "/root#top") == "http://example.com/root"
    assert redirect_target(base, "//other.example/p") == "http://other.example/p"
    # raw UTF-8 bytes in Location arrive as Latin-1 text from http.client
    assert redirect_target(base, "/caf\xc3\xa9") == "http://example.com/caf%C3%A9"
    with pytest.raises(BadUrl):
        redirect_target(base, "mailto:someone@example.com")


def test_origin_and_robots_url():
    assert origin_of("https://Example.com/x") == "https://example.com:443"
    assert robots_url(origin_of("https://example.com/x")) == "https://example.com/robots.txt"
    assert robots_url(origin_of("http://example.com:8080/x")) == "http://example.com:8080/robots.txt"
    assert robots_url(origin_of("http://[::1]/x")) == "http://[::1]/robots.txt"


def test_retry_after_forms():
    assert retry_after_seconds([("Retry-After", "7")]) == 7.0
    assert retry_after_seconds([("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]) == 0.0
    assert retry_after_seconds([("Retry-After", "soon")]) is None
    assert retry_after_seconds([]) is None


# --- content ----------------------------------------------------------------------------------


def test_gzip_bomb_stops_at_the_cap_without_inflating_it():
    bomb = gzip_bomb()
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            decode_body(bomb, "gzip", 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(bomb) < 200_000
    assert peak < 4 * (1 << 20)  # the cap plus slack, not the 64 MiB it would inflate to


def test_decode_body_codings():
    html = b"<html><body>hello</body></html>"
    assert decode_body(gzip.compress(html), "gzip", 1000) == html
    assert decode_body(gzip.compress(html) + gzip.compress(html), "x-gzip", 1000) == html * 2
    assert decode_body(zlib.compress(html), "deflate", 1000) == html
    raw = zlib.compressobj(wbits=-15)
    assert decode_body(raw.compress(html) + raw.flush(), "deflate", 1000) == html
    assert decode_body(html, "gzip", 1000) == html  # labelled gzip but already decoded
    assert decode_body(gzip.compress(gzip.compress(html)), "gzip, gzip", 1000) == html
    assert decode_body(gzip.compress(html), "gzip", 10, cut=True) == html[:10]
    with pytest.raises(BadEncoding):
        decode_body(html, "br", 1000)
    with pytest.raises(BadEncoding):
        decode_body(b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip", 1000)
    with pytest.raises(TooLarge):
        decode_body(html, None, 10)


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=3000))
@settings(max_examples=200, deadline=None)
def test_decode_body_never_exceeds_the_cap(data, limit):
    for coding, payload in ((None, data), ("gzip", gzip.compress(data)),
                            ("deflate", zlib.compress(data))):
        try:
            out = decode_body(payload, coding, limit)
        except TooLarge:
            assert len(data) > limit
        else:
            assert out == data and len(out) <= limit


def test_sniffing():
    assert sniff_binary(b"%PDF-1.7 ...") == "application/pdf"
    assert sniff_binary(b"\xff\xd8\xff\xe0JFIF") == "image/jpeg"
    assert sniff_binary(b"\x00\x00\x00\x18ftypmp42") == "video/mp4"
    assert sniff_binary(b"\x01\x02\x03binary") is not None
    assert sniff_binary(b"<html><body>fine</body></html>") is None
    assert sniff_binary("<html>ü</html>".encode("utf-16")) is None  # BOM: NULs expected
    assert looks_like_html(b"\xef\xbb\xbf  <!DOCTYPE html><html>")
    assert looks_like_html(b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'>")
    assert looks_like_html(b"<!-- comment --><p>x")
    assert not looks_like_html(b"<abbr>")  # <a followed by a letter is not <a>
    assert not looks_like_html(b"plain text")
    assert header_verdict("text/html; charset=x") == "html"
    assert header_verdict("APPLICATION/XHTML+XML") == "html"
    assert header_verdict(None) == header_verdict("application/octet-stream") == "sniff"
    assert header_verdict("image/png") == header_verdict("text/plain") == "not_html"


# --- charset ----------------------------------------------------------------------------------


def test_charset_cascade():
    text = "<html><body>Café – naïve</body></html>"
    assert decode_html(text.encode("utf-8"), "text/html; charset=UTF-8") == (
        decode_html(text.encode("utf-8"), "text/html; charset=utf8"))
    got = decode_html(text.encode("utf-8"), "text/html; charset=utf-8")
    assert (got.text, got.charset, got.source) == (text, "utf-8", "header")
    got = decode_html(text.encode("cp1252"), "text/html; charset=utf-8")  # wrong header
    assert got.text == text and got.source == "detected"
    got = decode_html(b"\xef\xbb\xbf" + text.encode(), "text/html; charset=iso-8859-1")
    assert (got.text, got.source) == (text, "detected")  # the BOM wins
    got = decode_html(b'<?xml version="1.0" encoding="ISO-8859-1"?><html>caf\xe9</html>')
    assert (got.charset, got.source) == ("cp1252", "meta") and "café" in got.text
    got = decode_html(b"<html>plain ascii</html>")
    assert (got.charset, got.source) == ("utf-8", "default")
    ascii_page = b"<html><head><meta charset=latin1></head><body>ok</body></html>"
    assert decode_html(ascii_page).source == "meta"


def test_labels_resolve_like_browsers():
    assert resolve_label("ISO-8859-1") == "cp1252"
    assert resolve_label("Shift_JIS") == "cp932"
    assert resolve_label("gb2312") == "gb18030"
    assert resolve_label("rot13") is None and resolve_label("base64") is None
    assert resolve_label("no-such-charset") is None and resolve_label("") is None


def test_undecodable_bytes():
    # Bytes no charset maps to text (C1 gaps of windows-1252, invalid UTF-8 lead bytes).
    with pytest.raises(UndecodableError):
        decode_html(b"\x81\x8d\x8f\x90\x9d" * 200 + b"\xff\xfe\xfd" * 300,
                    "text/html; charset=utf-8")


def test_interpret_orders_its_checks():
    def stored(status=200, headers=(("Content-Type", "text/html"),), body=b"<html>x</html>",
               truncated=""):
        return StoredResponse("http://e.com/a", status, list(headers), body, truncated, "d", 1)

    assert interpret(stored(301, [("Location", "/b")]), 100) == Redirect("http://e.com/b")
    assert interpret(stored(404), 100) == Failure("http_404", "http://e.com/a")
    verdict = interpret(stored(headers=[("Content-Type", "image/png")], truncated="length"), 100)
    assert isinstance(verdict, Failure) and verdict.reason == "not_html"
    verdict = interpret(stored(truncated="length"), 100)
    assert isinstance(verdict, Failure) and verdict.reason == "too_large"
    page = interpret(stored(), 100)
    assert isinstance(page, Page) and page.html == "<html>x</html>" and page.n_bytes == 14


# --- robots -----------------------------------------------------------------------------------


def test_robots_longest_match_and_wildcards():
    rules = parse_robots(
        b"User-agent: *\nDisallow: /\nAllow: /public\nDisallow: /*.pdf$\n"
        b"Disallow: /private/*/secret\nCrawl-delay: 3\n",
        "webtext",
    )
    assert rules.verdict("http://e.com/public/page") is None  # longer Allow beats Disallow: /
    assert rules.verdict("http://e.com/other") is not None
    assert rules.verdict("http://e.com/public/file.pdf") is not None  # *.pdf$ is longer
    assert rules.verdict("http://e.com/public/file.pdf?x=1") is None  # $ anchors the end
    assert rules.verdict("http://e.com/private/a/b/secret") is not None
    assert rules.crawl_delay == 3.0


def test_robots_groups_and_ties():
    body = (b"User-agent: otherbot\nDisallow: /\n\nUser-agent: WEBTEXT\nDisallow: /x\n"
            b"Allow: /x\n\nUser-agent: *\nDisallow: /y\n")
    rules = parse_robots(body, "webtext")
    assert rules.verdict("http://e.com/x") is None  # equal length: Allow wins
    assert rules.verdict("http://e.com/y") is None  # the * group does not apply to us
    assert parse_robots(b"User-agent: *\nDisallow:\n", "webtext").verdict("http://e.com/") is None
    assert parse_robots(b"", "webtext").verdict("http://e.com/") is None


def test_robots_status_policy():
    assert rules_for_status(404, b"", "webtext").verdict("http://e.com/") is None
    assert rules_for_status(401, b"", "webtext").verdict("http://e.com/") is None
    for status in (429, 500, 503):
        assert rules_for_status(status, b"", "webtext").verdict("http://e.com/")[0] == (
            "robots_disallowed")
    assert product_token("webtext/0.1 (+https://github.com/webtext/webtext)") == "webtext"


# --- politeness -------------------------------------------------------------------------------


def test_host_queues_interleave_hosts_and_respect_delay():
    queues: HostQueues[str] = HostQueues(per_host=1, delay=1.0)
    for i in range(3):
        queues.push("hot", f"hot{i}")
    queues.push("cold", "cold0")
    assert queues.pop_ready(0.0) == ("hot", "hot0")
    assert queues.pop_ready(0.0) == ("cold", "cold0")  # hot is busy: cold goes at once
    assert queues.pop_ready(0.0) is None
    queues.done("hot")
    assert queues.pop_ready(0.5) is None  # finished, but its delay has not passed
    assert queues.next_time() == 1.0
    assert queues.pop_ready(1.0) == ("hot", "hot1")
    queues.done("hot")
    queues.pause("hot", 5.0)
    assert queues.pop_ready(4.9) is None and queues.pop_ready(5.0) == ("hot", "hot2")
    queues.push("hot", "retry", front=True)
    assert len(queues) == 1 and queues.drain() == ["retry"]


@given(
    st.lists(st.tuples(st.integers(0, 4), st.floats(0.0, 0.3)), min_size=1, max_size=60),
    st.integers(1, 3),
    st.floats(0.0, 0.5),
)
@settings(max_examples=150, deadline=None)
def test_host_queues_never_break_politeness(work, per_host, delay):
    """Simulated time: however work arrives, no host exceeds its concurrency, starts
    closer than its delay, or is left waiting while it could run."""
    queues: HostQueues[int] = HostQueues(per_host=per_host, delay=delay)
    for index, (host, _) in enumerate(work):
        queues.push(f"h{host}", index)
    now, running, starts = 0.0, [], {}
    finished = 0
    while finished < len(work):
        while (ready := queues.pop_ready(now)) is not None:
            host, index = ready
            assert sum(1 for _, h in running if h == host) < per_host
            if host in starts:
                assert now - starts[host][-1] >= delay - 1e-9
            starts.setdefault(host, []).append(now)
            running.append((now + work[index][1], host))
        candidates = [end for end, _ in running]
        if (wake := queues.next_time()) is not None:
            candidates.append(wake)
        assert candidates, "work left but nothing running and nothing scheduled"
        now = max(now, min(candidates))
        for end, host in [r for r in running if r[0] <= now]:
            running.remove((end, host))
            queues.done(host)
            finished += 1


def test_archive_index_keeps_what_it_loaded_and_only_the_newest_fetches():
    from webtext_pipeline.fetch.archive import ArchivedAt, ArchiveIndex

    def at(n: int) -> ArchivedAt:
        return ArchivedAt("d", "f.warc.gz", n, 10, 200, "2017-12-01T00:00:00Z")

    index = ArchiveIndex(recent_limit=3)
    index.add("https://cache.example/old", at(0))
    for n in range(1, 6):
        index.remember(f"https://new.example/{n}", at(n))
    assert "https://cache.example/old" in index  # loaded entries are never dropped
    assert "https://new.example/1" not in index and "https://new.example/2" not in index
    assert [index.get(f"https://new.example/{n}").offset for n in (3, 4, 5)] == [3, 4, 5]
    assert len(index) == 4
    index.remember("https://cache.example/old", at(9))  # a refetch shadows the loaded entry
    assert index.get("https://cache.example/old").offset == 9


def test_packed_locations_keep_the_newest_capture_per_url():
    from webtext_pipeline.fetch.packed_index import PackedLocations

    packed = PackedLocations()
    packed.add("https://a.example/", "d", "b.warc.gz", 10, 5, 200, "2017-12-01T00:00:00Z")
    packed.add("https://a.example/", "d", "a.warc.gz", 20, 5, 404, "2018-01-01T00:00:00Z")
    packed.add("https://b.example/", "d", "a.warc.gz", 30, 5, 200, "2018-01-01T00:00:00Z")
    assert packed.get("https://a.example/").status == 404  # the newer capture
    assert packed.get("https://c.example/") is None
    # same capture time: the later file name wins, then the later offset
    packed.add("https://b.example/", "d", "c.warc.gz", 1, 5, 301, "2018-01-01T00:00:00Z")
    packed.add("https://b.example/", "d", "c.warc.gz", 9, 5, 302, "2018-01-01T00:00:00Z")
    found = packed.get("https://b.example/")
    assert (found.warc_file, found.offset, found.status) == ("c.warc.gz", 9, 302)
    assert found.fetched_at == "2018-01-01T00:00:00Z"
    assert len(packed) == 2
    # an older capture added later does not replace a newer one
    packed.add("https://a.example/", "d", "z.warc.gz", 0, 5, 200, "2016-01-01T00:00:00Z")
    assert packed.get("https://a.example/").warc_file == "a.warc.gz"


def test_packed_locations_cost_tens_of_bytes_per_url():
    from webtext_pipeline.fetch.packed_index import PackedLocations

    packed = PackedLocations()
    for n in range(20_000):
        packed.add(f"https://site{n % 50}.example/page/{n}", "cache", f"f{n // 5000}.warc.gz",
                   n * 100, 100, 200, "2017-12-01T00:00:00Z")
    assert len(packed) == 20_000
    assert packed.nbytes() / 20_000 <= 40
    assert packed.get("https://site7.example/page/12357").offset == 1_235_700
