"""Is the body HTML, and what are its bytes once gzip/deflate is undone?

Both questions are answered from stored bytes, so a live fetch and a replay
from the WARC give the same verdict. Decompression is incremental with an
output cap: a 50 KB gzip bomb that inflates to gigabytes stops at the cap
after allocating only the cap.
"""

from __future__ import annotations

import re
import zlib

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Types a server uses when it does not know: sniff the body (WHATWG MIME sniffing).
SNIFF_TYPES = frozenset(
    {"", "unknown/unknown", "application/unknown", "*/*", "application/octet-stream",
     "binary/octet-stream", "application/x-unknown-content-type"}
)
# XHTML is sometimes served as generic XML: accept it when the root is <html>.
XML_TYPES = frozenset({"text/xml", "application/xml"})

HTML = "html"
SNIFF = "sniff"
NOT_HTML = "not_html"


class TooLarge(Exception):
    """Decoded body over the cap."""


class BadEncoding(Exception):
    """Content-Encoding we cannot undo (unknown coding or corrupt stream)."""


def media_type(content_type: str | None) -> str:
    """'text/html; charset=utf-8' -> 'text/html'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def header_verdict(content_type: str | None) -> str:
    """HTML, SNIFF (decide from the body) or NOT_HTML, from the Content-Type alone."""
    media = media_type(content_type)
    if media in HTML_TYPES:
        return HTML
    if media in SNIFF_TYPES or media in XML_TYPES:
        return SNIFF
    return NOT_HTML


# Magic numbers of formats that are never HTML, whatever the header says.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "audio/video (RIFF)"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword"),
    (b"%!PS", "application/postscript"),
    (b"{\\rtf", "application/rtf"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"FLV\x01", "video/x-flv"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/x-msdownload"),
    (b"\xca\xfe\xba\xbe", "application/java-vm"),
)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
# WHATWG "binary data bytes": control characters no text format uses.
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
# WHATWG's list of tags that make an unlabelled body HTML (followed by space or '>').
_HTML_STARTS = (
    b"<!doctype html", b"<html", b"<head", b"<script", b"<iframe", b"<h1", b"<div", b"<font",
    b"<table", b"<a", b"<style", b"<title", b"<b", b"<body", b"<br", b"<p", b"<!--",
)


def sniff_binary(body: bytes) -> str | None:
    """The non-HTML type the body's first bytes prove, or None."""
    head = body[:1024]
    stripped = head.lstrip(b" \t\r\n")
    for magic, kind in _MAGIC:
        if stripped.startswith(magic):
            return kind
    if len(head) > 8 and head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(_BOMS[1:]):  # UTF-16: NUL bytes are expected
        return None
    if _BINARY_BYTES.search(head):
        return "application/octet-stream (binary bytes)"
    return None


def looks_like_html(body: bytes) -> bool:
    """The WHATWG sniff for an unlabelled body (plus XHTML: <?xml … <html)."""
    head = body[:1024]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    head = head.lstrip(b" \t\r\n\x0c").lower()
    if head.startswith(b"<?xml"):
        return b"<html" in head
    for start in _HTML_STARTS:
        if head.startswith(start):
            rest = head[len(start):len(start) + 1]
            if start == b"<!--" or rest in (b" ", b">", b"\t", b"\n", b"\r", b"\x0c"):
                return True
    return False


def decode_body(
    body: bytes, content_encoding: str | None, limit: int, cut: bool = False
) -> bytes:
    """Undo Content-Encoding (gzip, x-gzip, deflate, identity; applied in order), output capped.

    Raises TooLarge past `limit` bytes of output (or, with `cut`, returns the
    first `limit` bytes), BadEncoding for anything else.
    A body labelled gzip that is not gzip at all (a common server misconfiguration
    after the proxy already decoded it) is taken as it is.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    data = body
    for coding in reversed(codings):
        if coding in ("identity", "none"):
            continue
        if coding in ("gzip", "x-gzip"):
            if not data.startswith(b"\x1f\x8b"):
                continue
            data = _inflate(data, zlib.MAX_WBITS | 16, limit, cut)
        elif coding == "deflate":
            wbits = zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
            data = _inflate(data, wbits, limit, cut)
        else:
            raise BadEncoding(f"unsupported Content-Encoding {coding!r}")
    if len(data) > limit:
        if cut:
            return data[:limit]
        raise TooLarge(f"body over {limit} bytes")
    return data


def _is_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(data: bytes, wbits: int, limit: int, cut: bool = False) -> bytes:
    """Decompress with at most `limit` + 1 bytes of output ever held; concatenated
    gzip members are all read; a truncated stream yields what it had."""
    out: list[bytes] = []
    total = 0
    engine = zlib.decompressobj(wbits)
    pending = data
    try:
        while pending:
            chunk = engine.decompress(pending, limit + 1 - total)
            total += len(chunk)
            out.append(chunk)
            if total > limit:
                if cut:
                    return b"".join(out)[:limit]
                raise TooLarge(f"decoded body over {limit} bytes")
            if engine.eof:
                pending = engine.unused_data
                if pending and wbits & 16 and pending.startswith(b"\x1f\x8b"):
                    engine = zlib.decompressobj(wbits)
                    continue
                break
            pending = engine.unconsumed_tail
        tail = engine.flush() if not engine.eof else b""
    except zlib.error as exc:
        raise BadEncoding(f"corrupt compressed body: {exc}") from None
    out.append(tail)
    if total + len(tail) > limit:
        if cut:
            return b"".join(out)[:limit]
        raise TooLarge(f"decoded body over {limit} bytes")
    return b"".join(out)
