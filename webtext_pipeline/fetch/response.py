"""What one stored response means: a redirect, a page, or a reject reason.

`interpret` sees only what a WARC response record holds (status, headers as
stored, body bytes, truncation, date), so a live fetch — which archives its
response first and interprets the archived form — and a replay from the
archive reach the same verdict and the same row, byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from webtext_pipeline.fetch.charset import UndecodableError, decode_html
from webtext_pipeline.fetch.content import (
    NOT_HTML,
    SNIFF,
    BadEncoding,
    TooLarge,
    decode_body,
    header_verdict,
    looks_like_html,
    media_type,
    sniff_binary,
)
from webtext_pipeline.fetch.urls import BadUrl, redirect_target

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass
class StoredResponse:
    """A response as archived (or about to be): the input of `interpret`."""

    url: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # de-chunked, Content-Encoding still applied
    truncated: str  # WARC-Truncated: "", "length", "unspecified", ...
    fetched_at: str  # WARC-Date
    elapsed_ms: int
    warc_file: str = ""
    warc_offset: int = 0
    warc_length: int = 0

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None


@dataclass(frozen=True)
class Redirect:
    target: str


@dataclass(frozen=True)
class Failure:
    reason: str
    detail: str


@dataclass(frozen=True)
class Page:
    final_url: str
    http_status: int
    content_type: str
    charset: str
    charset_source: str
    html: str
    n_bytes: int  # body bytes after Content-Encoding is undone
    fetched_at: str
    warc_file: str
    warc_offset: int
    warc_length: int


def interpret(resp: StoredResponse, max_decoded_bytes: int) -> Redirect | Page | Failure:
    """The verdict on one response. Checks run cheapest first: status, header, size,
    decompression, magic bytes, charset."""
    status = resp.status
    if status in REDIRECT_STATUSES:
        location = resp.header("location")
        if not location:
            return Failure(f"http_{status}", "redirect without a Location header")
        try:
            return Redirect(redirect_target(resp.url, location))
        except BadUrl as exc:
            return Failure("bad_url", f"redirect to {location[:200]!r}: {exc}")
    if status != 200:
        return Failure(f"http_{status}", resp.url)
    content_type = resp.header("content-type") or ""
    verdict = header_verdict(content_type)
    if verdict == NOT_HTML:
        return Failure("not_html", f"Content-Type {media_type(content_type)}")
    if resp.truncated:
        return Failure("too_large", f"body cut at the byte cap ({resp.truncated})")
    try:
        body = decode_body(resp.body, resp.header("content-encoding"), max_decoded_bytes)
    except TooLarge as exc:
        return Failure("too_large", str(exc))
    except BadEncoding as exc:
        return Failure("decode_error", str(exc))
    if kind := sniff_binary(body):
        return Failure("not_html", f"body is {kind} (Content-Type {media_type(content_type)!r})")
    if verdict == SNIFF and not looks_like_html(body):
        return Failure("not_html", f"Content-Type {media_type(content_type)!r}, body not HTML")
    try:
        decoded = decode_html(body, content_type)
    except UndecodableError as exc:
        return Failure("decode_error", str(exc))
    return Page(
        final_url=resp.url,
        http_status=status,
        content_type=content_type,
        charset=decoded.charset,
        charset_source=decoded.source,
        html=decoded.text,
        n_bytes=len(body),
        fetched_at=resp.fetched_at,
        warc_file=resp.warc_file,
        warc_offset=resp.warc_offset,
        warc_length=resp.warc_length,
    )


def wanted_body_bytes(status: int, headers: dict[str, str], max_bytes: int) -> int:
    """How much body a live fetch keeps: none for a 200 that is plainly not HTML (a PDF,
    a video: the verdict is already known), else up to `max_bytes`."""
    if status == 200 and header_verdict(headers.get("content-type")) == NOT_HTML:
        return 0
    return max_bytes
