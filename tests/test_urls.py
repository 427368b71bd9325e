"""URL normalisation: every spelling of one page gets one key; bad URLs are refused."""

from __future__ import annotations

import pytest

from webtext_pipeline.links import urls


@pytest.mark.parametrize(
    "spelling",
    [
        "https://example.com/a/b",
        "HTTPS://EXAMPLE.COM/a/b",
        "https://www.example.com/a/b/",
        "https://example.com:443/a/b#section",
        "https://example.com/a/b?utm_source=reddit&utm_medium=x",
        "https://example.com/a/b?fbclid=abc&gclid=def&ref=front",
        "https://example.com/%61/b",
    ],
)
def test_spellings_of_one_page_share_a_key(spelling):
    assert urls.normalize_url(spelling) == "https://example.com/a/b"


def test_query_is_sorted_and_kept():
    assert urls.normalize_url("http://x.org/p?b=2&a=1&utm_x=3") == "http://x.org/p?a=1&b=2"


def test_percent_encoding_is_unified():
    assert urls.normalize_url("http://x.org/a b") == urls.normalize_url("http://x.org/a%20b")
    assert urls.normalize_url("http://x.org/%7Euser") == "http://x.org/~user"


def test_idna_host_and_non_default_port():
    assert urls.normalize_url("https://münchen.de:8080/x") == "https://xn--mnchen-3ya.de:8080/x"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file", "is not http"),
        ("javascript:alert(1)", "is not http"),
        ("http:///path", "no host"),
        ("http://10.0.0.1/admin", "non-public IP"),
        ("http://127.0.0.1:8080/", "non-public IP"),
        ("http://[::1]/", "non-public IP"),
        ("http://169.254.169.254/latest/meta-data", "non-public IP"),
        ("https://example.com/" + "a" * 3000, "longer than"),
        ("http://exa mple.com:99999/", "unparseable"),
    ],
)
def test_invalid_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(urls.InvalidURL, match=message):
        urls.normalize_url(url)


def test_public_ip_literal_is_allowed():
    assert urls.normalize_url("http://8.8.8.8/x") == "http://8.8.8.8/x"


def test_registered_domain_uses_public_suffixes():
    assert urls.registered_domain("news.bbc.co.uk") == "bbc.co.uk"
    assert urls.registered_domain("a.b.example.com") == "example.com"


@pytest.mark.parametrize(
    "host", ["en.wikipedia.org", "de.m.wikipedia.org", "wikipedia.org", "EN.M.WIKIPEDIA.ORG"]
)
def test_every_wikipedia_host_is_recognised(host):
    assert urls.is_wikipedia_host(host)


def test_lookalike_is_not_wikipedia():
    assert not urls.is_wikipedia_host("notwikipedia.org")
    assert not urls.is_wikipedia_host("wikipedia.org.evil.com")


def test_blocklist_matches_subdomains_only_on_label_boundaries():
    blocked = frozenset({"imgur.com"})
    assert urls.host_matches("i.imgur.com", blocked) == "imgur.com"
    assert urls.host_matches("notimgur.com", blocked) is None
    assert urls.host_matches("a.b.imgur.com", blocked) == "imgur.com"
    assert urls.host_matches("imgur.com", blocked) == "imgur.com"


def test_blocklist_never_matches_a_bare_top_level_domain():
    # A list line "com" must not block every .com site (an entry needs a dot to match).
    assert urls.host_matches("example.com", frozenset({"com"})) is None
    assert urls.host_matches("com", frozenset({"com"})) is None


def test_path_extension():
    assert urls.path_extension("https://x.com/a/photo.JPG") == "jpg"
    assert urls.path_extension("https://x.com/a.b/page") == ""


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PIECES = st.sampled_from(
    ["http://", "https://", "HTTP://", "www.", "Example", ".com", ".co.uk", "news", ":80", ":443",
     ":8080", ":0080", ":99999", "/", "a", "B", "%7e", "%20", "~", "..", ".pdf", "?", "q=1", "&",
     "utm_source=x", "#", "frag", " ", "ü", "-", "_", "123", "1.2.3.4", "[::1]", "//", "@", ";",
     "?v=abc", "&t=42", "&ref=y", "=", "+", "b=", "&&", "Q=%41", "FBCLID=1", "?x=1&a=2"]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=12).map("".join))
def test_plain_fast_path_agrees_with_the_general_path(url):
    fast = urls._plain_parts(url)
    if fast is None:
        return
    assert fast == urls.general_url_parts(url)


@pytest.mark.parametrize(
    "url",
    ["https://Example.com/a/b/", "http://www.x.org:80/p.PDF#x", "https://a.b.co.uk:8080",
     "http://x.org/~u/(1)/", "HTTPS://WWW.X.ORG", "http://x.org:0443/", "https://x.org/#/route",
     "https://www.youtube.com/watch?v=dQw4w9WgXcQ&feature=share&t=42", "http://x.org/?",
     "http://x.org?b=2&a=1&utm_source=rss#top", "http://x.org/p?=v&k="],
)
def test_fast_path_is_taken_and_agrees(url):
    assert urls._plain_parts(url) is not None
    assert urls._plain_parts(url) == urls.general_url_parts(url)
