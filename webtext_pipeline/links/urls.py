"""URL checks and normalisation: one key per page, whatever form it was posted in.

The key (not the URL) decides which submissions are the same link. The original
URL is kept for fetching, because servers do not always treat the normal form
the same way.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import idna
import tldextract

MAX_URL_LENGTH = 2048

TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
        "ref", "ref_src", "ref_url", "referrer", "src", "source", "cmpid", "campaign",
        "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid",
        "share", "spm", "feature", "wt_mc", "wt.mc_id", "ncid", "ito", "cid",
    }
)
TRACKING_PREFIXES = ("utm_", "ga_", "pk_", "hmb_", "__twitter")
DEFAULT_PORTS = {"http": "80", "https": "443"}
# Characters that may stay literal in a path or query; everything else is %-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = ":@!$'()*+,;/?-._~"

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
_WIKIPEDIA_RE = re.compile(r"(^|\.)wikipedia\.org$")


class InvalidURL(ValueError):
    """The URL cannot be fetched or keyed; the message is the reject detail."""


@lru_cache(maxsize=65536)
def _idna_host(host: str) -> str:
    host = host.strip(".").lower()
    if not host:
        raise InvalidURL("no host")
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidURL(f"bad IDNA host: {exc}") from None


@lru_cache(maxsize=65536)
def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # A name (not an address) ends in a letter and holds no ':'; skip the raising parse.
    if not host or (host[-1] not in "0123456789]" and ":" not in host):
        return None
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_LITERAL_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")
_LITERAL_QUERY = re.compile(r"[A-Za-z0-9:@!$'()*+,;/?._~-]*")
# Strings made only of characters `quote(..., safe)` keeps and holding no '%' come back unchanged.
_LITERAL = {_PATH_SAFE: _LITERAL_PATH, _QUERY_SAFE: _LITERAL_QUERY}


def _unify_percent(text: str, safe: str) -> str:
    """Decode then re-encode, so %7E, ~ and %7e all become ~ and spaces become %20."""
    literal = _LITERAL.get(safe)
    if literal is not None and literal.fullmatch(text):  # quote(unquote(text)) == text
        return text
    return quote(unquote(text), safe=safe)


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMS or lowered.startswith(TRACKING_PREFIXES)


def split_checked(url: str) -> tuple[str, str, str, str, str]:
    """Split a URL and enforce what every fetchable URL needs; raise InvalidURL otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"longer than {MAX_URL_LENGTH} characters")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"unparseable: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidURL(f"scheme {scheme or 'missing'!r} is not http(s)")
    host = _idna_host(parts.hostname or "")
    address = _ip_literal(host)
    if address is not None and not address.is_global:
        raise InvalidURL(f"non-public IP literal {address}")
    netloc = host if address is None or address.version == 4 else f"[{host}]"
    if port is not None and str(port) != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return scheme, netloc, parts.path, parts.query, parts.fragment


def normalize_url(url: str) -> str:
    """The dedup key of a URL (see module docstring); raises InvalidURL."""
    return normalize_url_parts(url)[0]


# Most posted URLs are plain: http(s), a name, maybe a port, a path of safe
# characters, no query or a query of plain `name=value` pairs. For those a
# regex gives the same key as the general path below (a test checks the two
# agree) at a fraction of the cost.
_PLAIN_URL = re.compile(
    r"(?i:(https?))://((?:[A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*)(?::(\d{1,5}))?"
    r"(/[A-Za-z0-9/._~!$&'()*+,;=:@-]*)?(?:\?([^#]*))?(?:#.*)?",
    re.DOTALL,
)
# A query that parse_qsl splits on '&' and '=' only and whose names and values
# need no (un)quoting: no '%', '+', ';' or empty pairs.
_QUERY_PAIR = r"[A-Za-z0-9._~-]*=[A-Za-z0-9._~-]*"
_PLAIN_QUERY = re.compile(f"{_QUERY_PAIR}(?:&{_QUERY_PAIR})*")


def _plain_parts(url: str) -> tuple[str, str, str] | None:
    match = _PLAIN_URL.fullmatch(url)
    if match is None or len(url) > MAX_URL_LENGTH:
        return None
    scheme, host, port, path, query = match.groups()
    if query:
        if _PLAIN_QUERY.fullmatch(query) is None:
            return None
        params = sorted(
            pair for pair in (item.partition("=")[::2] for item in query.split("&"))
            if not _is_tracking(pair[0])
        )
        query = "&".join(f"{name}={value}" for name, value in params)
    scheme, host = scheme.lower(), host.lower()
    if port is not None and int(port) > 65535:
        return None
    netloc = host[4:] if host.startswith("www.") else host
    if port is not None and str(int(port)) != DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{int(port)}"
    path = (path or "/").rstrip("/") or "/"
    last = path.rsplit("/", 1)[-1]
    extension = last.rsplit(".", 1)[-1].lower() if "." in last else ""
    key = f"{scheme}://{netloc}{path}?{query}" if query else f"{scheme}://{netloc}{path}"
    return key, netloc.partition(":")[0], extension


def normalize_url_parts(url: str) -> tuple[str, str, str]:
    """(key, host, extension): `normalize_url`, `host_of` and `path_extension` in one parse."""
    return _plain_parts(url) or general_url_parts(url)


def general_url_parts(url: str) -> tuple[str, str, str]:
    """`normalize_url_parts` for any URL (percent-encoding, queries, IDNA, IP literals)."""
    scheme, netloc, path, query, _fragment = split_checked(url)
    if netloc.startswith("www."):
        netloc = netloc[4:]
    path = _unify_percent(path, _PATH_SAFE) or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    params = [
        (_unify_percent(k, _QUERY_SAFE), _unify_percent(v, _QUERY_SAFE))
        for k, v in parse_qsl(query, keep_blank_values=True)
        if not _is_tracking(k)
    ]
    query = urlencode(sorted(params), safe=_QUERY_SAFE, quote_via=quote) if params else ""
    key = urlunsplit((scheme, netloc, path, query, ""))
    host = netloc.partition(":")[0]
    if _ODD_HOST.search(host):  # IPv6 literals and strange hosts: let urlsplit decide
        host = host_of(key)
    # The key's path is `path`: '?' and '#' in it were %-encoded above.
    last = path.rsplit("/", 1)[-1]
    extension = last.rsplit(".", 1)[-1].lower() if "." in last else ""
    return key, host, extension


_ODD_HOST = re.compile(r"[^a-z0-9.\-_]")


def host_of(url_key: str) -> str:
    """The host of a normalised key (no port)."""
    return urlsplit(url_key).hostname or ""


@lru_cache(maxsize=65536)
def registered_domain(host: str) -> str:
    """eTLD+1 from the bundled Public Suffix List snapshot (never fetched at run time)."""
    if _ip_literal(host) is not None:
        return host
    result = _EXTRACT(host)
    return result.top_domain_under_public_suffix or host


def is_wikipedia_host(host: str) -> bool:
    """Every language and mobile subdomain of wikipedia.org, and wikipedia.org itself."""
    return bool(_WIKIPEDIA_RE.search(host.lower().rstrip(".")))


def path_extension(url_key: str) -> str:
    """The lower-case file extension of the URL path's last segment, without the dot."""
    last = urlsplit(url_key).path.rsplit("/", 1)[-1]
    if "." not in last:
        return ""
    return last.rsplit(".", 1)[-1].lower()


def host_matches(host: str, domains: frozenset[str]) -> str | None:
    """The blocklisted domain that `host` is, or is a subdomain of, if any (never a bare TLD)."""
    candidate = host
    while "." in candidate:
        if candidate in domains:
            return candidate
        candidate = candidate.partition(".")[2]
    return None
