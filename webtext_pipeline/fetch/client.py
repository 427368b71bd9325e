"""One HTTP exchange: a GET on `requests`' connection pool, guarded, bounded, captured.

`exchange()` sends one request (no redirect following: the fetcher does that,
hop by hop, so the guard, robots.txt and politeness see every hop) and reads
the body as it came off the wire — de-chunked but still gzip/deflate encoded,
which is what a WARC response record stores. It enforces, while reading:
`max_bytes`, the read timeout and the per-URL wall-clock deadline. The
`Watchdog` (watchdog.py) backs the deadline up by shutting the socket of an
exchange that overstays it, so even a server dripping its headers a byte at a
time cannot hold a worker thread. The pool is connection.py's guarded one.

Why the adapter and not `Session.send`: with `allow_redirects=False`,
`Session.send` reads the whole body of every redirect response (unbounded)
to compute `Response.next`. `HTTPAdapter.send` is the pool without that.
"""

from __future__ import annotations

import email.utils
import http.client
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
import urllib3
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ReadTimeoutError

from webtext_pipeline.fetch.config import FetchConfig
from webtext_pipeline.fetch.guard import BlockedAddress, DnsFailure
from webtext_pipeline.fetch.watchdog import Slot, Watchdog

READ_CHUNK = 64 * 1024
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
# Only what content.decode_body understands; urllib3 would otherwise advertise br/zstd.
ACCEPT_ENCODING = "gzip, deflate"


class TransportError(Exception):
    """The exchange produced no complete response; `reason` is a fetch reject reason."""

    def __init__(self, reason: str, detail: str, retryable: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable


@dataclass
class Capture:
    """One response as received, plus the request that asked for it (for the WARC pair)."""

    url: str
    status: int
    reason: str
    protocol: str
    headers: list[tuple[str, str]]
    body: bytes  # entity body: de-chunked, Content-Encoding still applied
    truncated: str  # "" | "length" (over a cap) | "unspecified" (body not wanted)
    request_line: str
    request_headers: list[tuple[str, str]]
    peer: str
    date: str  # WARC-Date: when the response headers arrived, UTC, seconds
    elapsed_ms: int
    cookies: RequestsCookieJar | None = None  # to send on the next hop of the chain


def warc_date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_headers(config: FetchConfig) -> dict[str, str]:
    headers = {
        "User-Agent": config.user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    headers.update(dict(config.extra_headers))
    return headers


def _prepare(url: str, headers: dict[str, str], jar: RequestsCookieJar | None
             ) -> requests.PreparedRequest:
    """A GET for a URL already in normal form (urls.normalize_url ran requests'
    prepare_url on it), without preparing it again."""
    prepared = requests.PreparedRequest()
    prepared.method = "GET"
    prepared.url = url
    prepared.headers = CaseInsensitiveDict(headers)
    prepared.body = None
    prepared.hooks = default_hooks()
    if jar:
        prepared.prepare_cookies(jar)
    return prepared


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0].strip())
    except ValueError:
        return None


BodyLimit = Callable[[int, Mapping[str, str]], int]


def exchange(
    session: requests.Session,
    watchdog: Watchdog,
    config: FetchConfig,
    url: str,
    deadline: float,
    body_limit: BodyLimit,
    jar: RequestsCookieJar | None = None,
) -> Capture:
    """GET `url` once and capture the response; raises TransportError.

    `body_limit(status, headers)` says how many body bytes to keep: 0 means the
    body is not wanted (e.g. a PDF), so the connection is dropped unread.
    `jar` holds the cookies of the redirect chain so far; the capture's
    `cookies` adds the response's (cookie-check redirects need them).
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TransportError("timeout", f"deadline of {config.deadline:g} s passed")
    prepared = _prepare(url, request_headers(config), jar)
    adapter = session.get_adapter(url)
    slot = watchdog.arm(deadline)
    started = time.perf_counter()
    response = None
    clean = False
    try:
        try:
            timeouts = (min(config.connect_timeout, remaining), min(config.read_timeout, remaining))
            response = adapter.send(prepared, stream=True, timeout=timeouts, verify=True)
        except BlockedAddress as exc:
            raise TransportError("blocked_address", str(exc)) from None
        except DnsFailure as exc:
            raise TransportError("dns_error", str(exc)) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise TransportError("timeout", f"connect: {_short(exc)}") from None
        except requests.exceptions.ReadTimeout:
            raise TransportError("timeout", "no response headers within the read timeout") from None
        except requests.exceptions.SSLError as exc:
            raise TransportError("connect_error", f"TLS: {_short(exc)}") from None
        except requests.exceptions.InvalidURL as exc:
            raise TransportError("bad_url", _short(exc)) from None
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError,
                http.client.HTTPException) as exc:  # refused, reset, garbled status line...
            if slot.fired:
                raise TransportError("timeout", "deadline passed before the headers") from None
            raise TransportError("connect_error", _short(exc), retryable=True) from None
        raw = response.raw
        date = warc_date()
        peer = ""
        conn = raw.connection
        if conn is not None and conn.sock is not None:
            try:
                peer = str(conn.sock.getpeername()[0])
            except OSError:
                peer = ""
        headers = list(raw.headers.items())
        lower = {k.lower(): v for k, v in reversed(headers)}
        limit = body_limit(response.status_code, lower)
        declared = _content_length(lower)
        truncated = ""
        body = b""
        if limit <= 0:
            truncated = "" if declared == 0 else "unspecified"
        elif declared is not None and declared > limit:
            truncated = "length"
        else:
            body, truncated = _read_body(raw, limit, deadline, slot, config)
            clean = not truncated
        if "set-cookie" in lower:
            jar = jar if jar is not None else RequestsCookieJar()
            extract_cookies_to_jar(jar, prepared, raw)
        protocol = "HTTP/1.0" if raw.version == 10 else "HTTP/1.1"
        request_line = f"GET {prepared.path_url} HTTP/1.1"
        sent = list(prepared.headers.items())
        host = prepared.url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        return Capture(
            url=url,
            status=int(response.status_code),
            reason=str(raw.reason or ""),
            protocol=protocol,
            headers=headers,
            body=body,
            truncated=truncated,
            request_line=request_line,
            request_headers=[("Host", host), *sent],
            peer=peer,
            date=date,
            elapsed_ms=int(round((time.perf_counter() - started) * 1000)),
            cookies=jar,
        )
    finally:
        watchdog.disarm(slot)
        if response is not None:
            if clean:
                response.raw.release_conn()
            else:
                response.close()


def _read_body(raw, limit: int, deadline: float, slot: Slot, config: FetchConfig
               ) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    """Read at most `limit` bytes as they arrive; ("", "length") past the cap."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() >= deadline:
            raise TransportError("timeout", f"deadline of {config.deadline:g} s passed mid-body")
        try:
            data = raw.read1(READ_CHUNK, decode_content=False)
        except ReadTimeoutError:
            if slot.fired:
                raise TransportError("timeout", "deadline passed mid-body") from None
            raise TransportError("timeout", "read timeout mid-body") from None
        except Exception as exc:  # urllib3 ProtocolError/SSLError/OSError: connection broke
            if slot.fired or time.monotonic() >= deadline:
                raise TransportError("timeout", "deadline passed mid-body") from None
            raise TransportError(
                "connect_error", f"connection broken mid-body: {_short(exc)}", retryable=True
            ) from None
        if not data:
            return b"".join(chunks), ""
        size += len(data)
        if size > limit:
            chunks.append(data[: len(data) - (size - limit)])
            return b"".join(chunks), "length"
        chunks.append(data)


def retry_after_seconds(headers: list[tuple[str, str]]) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), or None."""
    value = next((v for k, v in headers if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short(exc: BaseException) -> str:
    """The innermost useful message of a requests/urllib3 exception chain, one line."""
    reason = exc
    for _ in range(4):
        inner = getattr(reason, "reason", None) or (reason.args[0] if reason.args else None)
        if isinstance(inner, BaseException):
            reason = inner
        else:
            break
    text = str(reason).replace("\n", " ")
    return text[:300]
