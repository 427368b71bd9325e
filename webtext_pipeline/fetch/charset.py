"""Bytes -> text for an HTML page, and where the charset came from.

Order (roughly WHATWG's, with one data-driven exception):

1. a byte-order mark                                  -> source "detected"
2. the Content-Type header's charset                  -> "header"
3. <meta charset> / http-equiv / <?xml encoding?> in the first 4 KB -> "meta"
4. detection: valid UTF-8, else charset-normalizer   -> "detected"
   (windows-1252 wins a near tie, see `_detect`)
5. UTF-8 with replacement characters                  -> "default"

A declared charset is used only if it decodes the body cleanly (fewer than 1 %
of the non-ASCII characters come out as U+FFFD); otherwise the next source is
tried, so a page whose header says UTF-8 but whose bytes are windows-1252 is
read right. The exception to "header first": when the header (or meta) names
a single-byte legacy charset but the body is valid UTF-8 with non-ASCII in it,
UTF-8 wins (source "detected") — valid multi-byte UTF-8 by accident is
vanishingly rare, a stale "iso-8859-1" header is common. A body that is
still mostly U+FFFD at step 5 is a `decode_error`.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

PRESCAN_BYTES = 4096
DETECT_BYTES = 256 * 1024
MAX_BAD_SHARE_DECLARED = 0.01  # of non-ASCII characters
MAX_BAD_SHARE_DEFAULT = 0.05  # of all characters, for the last resort
NEAR_TIE_CHAOS = 0.1

# WHATWG label quirks: these labels mean windows-1252 (or a superset) in every browser.
_ALIASES = {
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "iso_8859-1": "cp1252", "latin1": "cp1252",
    "latin-1": "cp1252", "l1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252", "windows-1252": "cp1252", "x-cp1252": "cp1252",
    "iso-8859-9": "cp1254", "latin5": "cp1254", "iso-8859-11": "cp874", "tis-620": "cp874",
    "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
    "ms_kanji": "cp932", "windows-31j": "cp932",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
    "euc-kr": "cp949", "ks_c_5601-1987": "cp949", "windows-949": "cp949",
    "big5": "big5hkscs", "x-x-big5": "big5hkscs",
    "utf8": "utf-8", "unicode-1-1-utf-8": "utf-8", "x-user-defined": "cp1252",
}
# Python codecs that are not charsets a page can be written in.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined", "utf-7", "mbcs",
     "oem", "palmos"}
)
_SINGLE_BYTE = re.compile(
    r"^(cp12\d\d|cp874|cp437|cp85\d|cp1125|iso8859-\d+|ascii|koi8-[ru]|mac-[\w-]+|tis-620)$"
)
_META = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-zA-Z0-9._:\-]+)""", re.IGNORECASE
)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([a-zA-Z0-9._:\-]+)""")
_BOM_CODECS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
               (codecs.BOM_UTF16_BE, "utf-16-be"))


class UndecodableError(ValueError):
    """No charset turns the bytes into text."""


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str  # a Python codec name: utf-8, cp1252, cp932, ...
    source: str  # header | meta | detected | default


def resolve_label(label: str | None) -> str | None:
    """A charset label from a page -> a Python codec name, or None if unusable."""
    if not label:
        return None
    key = label.strip().strip("'\"").lower()
    key = _ALIASES.get(key, key)
    try:
        name = codecs.lookup(key).name
    except LookupError:
        return None
    if name in _NOT_CHARSETS or not getattr(codecs.lookup(name), "_is_text_encoding", True):
        return None
    return name


def header_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, as written."""
    match = re.search(r"charset\s*=\s*[\"']?([^\"';,\s]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else None


def meta_charset(body: bytes) -> str | None:
    """The charset declared in the document head (first 4 KB), as written."""
    head = body[:PRESCAN_BYTES]
    match = _XML_DECL.match(head) or _META.search(head)
    return match.group(1).decode("ascii", "replace") if match else None


def _try(body: bytes, codec: str) -> str | None:
    """Decode if (almost) clean: < 1 % of the non-ASCII characters become U+FFFD."""
    try:
        text = body.decode(codec, errors="replace")
    except (LookupError, UnicodeError, TypeError):
        return None
    bad = text.count("\ufffd")
    if not bad:
        return text
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return text if bad < MAX_BAD_SHARE_DECLARED * non_ascii else None


def _utf8_beats(body: bytes, codec: str) -> str | None:
    """Valid UTF-8 with non-ASCII bytes overrides a declared single-byte charset."""
    if not _SINGLE_BYTE.match(codec) or body.isascii():
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _detect(sample: bytes) -> str | None:
    """charset-normalizer's pick, except that windows-1252 wins a near tie: on short
    Western text the detector often prefers a Baltic or Central European code page
    that turns "crème" into "crčme", and windows-1252 is the web's legacy default."""
    results = list(from_bytes(sample))
    if not results:
        return None
    best = min(results, key=lambda r: r.chaos)
    for result in results:
        if result.chaos <= best.chaos + NEAR_TIE_CHAOS and any(
            c in ("cp1252", "latin_1", "iso8859_15") for c in result.could_be_from_charset
        ):
            return "cp1252"
    return resolve_label(results[0].encoding)


def decode_html(body: bytes, content_type: str | None = None) -> Decoded:
    """The text of an HTML body and its charset; raises UndecodableError."""
    for bom, codec in _BOM_CODECS:
        if body.startswith(bom):
            text = _try(body[len(bom):], codec)
            if text is not None:
                return Decoded(text, codec, "detected")
    for source, label in (("header", header_charset(content_type)), ("meta", meta_charset(body))):
        codec = resolve_label(label)
        if codec is None:
            continue
        if source == "meta" and codec.startswith("utf-16"):
            codec = "utf-8"  # WHATWG: a meta tag readable as ASCII cannot be UTF-16
        if (text := _utf8_beats(body, codec)) is not None:
            return Decoded(text, "utf-8", "detected")
        if (text := _try(body, codec)) is not None:
            return Decoded(text, codec, source)
    if body.isascii():
        return Decoded(body.decode("ascii"), "utf-8", "default")
    try:
        return Decoded(body.decode("utf-8"), "utf-8", "detected")
    except UnicodeDecodeError:
        pass
    codec = _detect(body[:DETECT_BYTES])
    if codec is not None and (text := _try(body, codec)) is not None:
        return Decoded(text, codec, "detected")
    text = body.decode("utf-8", errors="replace")
    if text.count("\ufffd") > MAX_BAD_SHARE_DEFAULT * max(1, len(text)):
        raise UndecodableError("no charset decodes the body (mostly invalid bytes)")
    return Decoded(text, "utf-8", "default")
