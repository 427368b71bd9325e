"""URL handling for the fetcher: one normal form, the host key and the robots origin.

The normal form is what `requests` would put on the wire (IDNA host,
re-quoted path) without the fragment, which is never sent. The archive is
keyed by it, so a live fetch and a later lookup of the same link agree.
"""

from __future__ import annotations

import contextlib
import zlib
from urllib.parse import urldefrag, urljoin, urlsplit

import requests
from requests.exceptions import InvalidURL, MissingSchema, RequestException
from requests.utils import requote_uri
from urllib3.exceptions import LocationParseError

MAX_URL_CHARS = 8192


class BadUrl(ValueError):
    """The text is not an absolute http(s) URL we can request."""


def normalize_url(url: str) -> str:
    """The URL as it goes on the wire, fragment dropped; raises BadUrl."""
    text = url.strip() if isinstance(url, str) else ""
    if not text:
        raise BadUrl("empty URL")
    if len(text) > MAX_URL_CHARS:
        raise BadUrl(f"URL longer than {MAX_URL_CHARS} characters")
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme not in ("http", "https"):
        raise BadUrl(f"scheme {scheme or '(none)'!r} is not http or https")
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(text, None)
    except (InvalidURL, MissingSchema, RequestException, LocationParseError, UnicodeError,
            ValueError) as exc:
        raise BadUrl(f"{type(exc).__name__}: {exc}") from None
    final = urldefrag(prepared.url or "")[0]
    try:
        parts = urlsplit(final)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise BadUrl(str(exc)) from None
    if not parts.hostname:
        raise BadUrl("no host")
    if port == 0:
        raise BadUrl("port 0")
    return final


def host_of(url: str) -> str:
    """The politeness key: the lower-case host name (ports share their host's budget)."""
    return (urlsplit(url).hostname or "").lower()


def host_bucket_of(url: str, buckets: int, fallback: str = "") -> int:
    """A stable bucket (crc32, never Python's salted hash) for the URL's host; without a
    host, for `fallback`, else for the URL itself. The fetch stage's buckets and the
    archive index's partitions both use this rule, so one fetch batch needs one partition."""
    try:
        host = host_of(url)
    except ValueError:
        host = ""
    key = host or fallback or url
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % buckets


def origin_of(url: str) -> str:
    """scheme://host:port — robots.txt applies per origin (RFC 9309 §2.3)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def robots_url(origin: str) -> str:
    """The robots.txt URL of an origin, in normal form (default port left out)."""
    scheme, rest = origin.split("://", 1)
    default = ":443" if scheme == "https" else ":80"
    if rest.endswith(default):
        rest = rest[: -len(default)]
    return f"{scheme}://{rest}/robots.txt"


def redirect_target(base: str, location: str) -> str:
    """Resolve a Location header against the URL that sent it; raises BadUrl.

    Servers send raw UTF-8 in Location, which http.client hands over as Latin-1
    text; undo that first, as requests does (`get_redirect_target`).
    """
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        location = location.encode("latin1").decode("utf8")
    location = location.strip()
    if not location:
        raise BadUrl("empty Location")
    if location.startswith("//"):
        location = f"{urlsplit(base).scheme}:{location}"
    return normalize_url(requote_uri(urljoin(base, location)))
