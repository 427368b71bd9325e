"""Find the monthly dump files and stream their lines, one bounded batch at a time.

Decompression runs chunk by chunk through the codecs' incremental objects, so a
20 GB month never sits in memory, and a file that ends mid-stream (a truncated
download) or holds garbage is *noticed*: zstd's stream reader returns a short
read silently, the incremental objects tell us the frame never ended.
The library never opens paths itself: callers pass an opened binary file, so
the Beam layer can hand in `gs://` files from Beam's FileSystems.
"""

from __future__ import annotations

import bz2
import lzma
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

import numpy as np
import zstandard

ZSTD_MAX_WINDOW = 2**31
READ_CHUNK = 1 << 15  # compressed; ~180 KiB out: fewer heap trims than 64 KiB (docs/benchmarks.md)
MAX_LINE_BYTES = 16 << 20
# A batch fits in a core's L2 cache while it is decoded, and its memory is
# reused from the heap: 4 MiB batches were fresh mmapped pages each time (67k
# page faults per 300k lines) and made parse+filter ~25 % slower
# (docs/benchmarks.md, "Cache-sized batches").
BATCH_BYTES = 256 << 10
DUMP_SUFFIXES = (".zst", ".xz", ".bz2", ".gz", ".json", ".ndjson", ".jsonl")
_MONTH_RE = re.compile(r"(?:^|[^0-9])(\d{4})-(\d{2})(?:[^0-9]|$)")


class Decompressor(Protocol):
    eof: bool
    unused_data: bytes

    def decompress(self, data: bytes) -> bytes: ...


class _Identity:
    """A pass-through 'codec' for plain JSON lines; never reaches eof."""

    eof = False
    unused_data = b""

    def decompress(self, data: bytes) -> bytes:
        return data


def _zstd() -> Decompressor:
    return zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()


CODECS: dict[str, Callable[[], Decompressor]] = {
    ".zst": _zstd,
    ".xz": lzma.LZMADecompressor,
    ".bz2": bz2.BZ2Decompressor,
    ".gz": lambda: zlib.decompressobj(wbits=47),
}


class DumpError(Exception):
    """A file that could not be read to its end; the message names what went wrong."""


def month_of(path: str) -> str | None:
    """The `YYYY-MM` a dump file's name carries (RS_2017-12.zst, RS_v2_2008-01.xz), or None."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    matches = _MONTH_RE.findall(name)
    if not matches:
        return None
    year, month = matches[-1]
    return f"{year}-{month}" if 1 <= int(month) <= 12 else None


def is_dump_name(path: str) -> bool:
    return path.lower().endswith(DUMP_SUFFIXES)


def select_months(paths: list[str], cutoff: str) -> tuple[list[str], list[str]]:
    """Split paths into (chosen: month ≤ cutoff, skipped: later or unnamed month), both sorted."""
    chosen, skipped = [], []
    for path in sorted(set(paths)):
        month = month_of(path)
        (chosen if month is not None and month <= cutoff else skipped).append(path)
    return chosen, skipped


def _codec_for(path: str) -> Decompressor:
    for suffix, factory in CODECS.items():
        if path.lower().endswith(suffix):
            return factory()
    return _Identity()


def _decompressed_chunks(fileobj: BinaryIO, path: str) -> Iterator[bytes]:
    """Yield decompressed bytes; raise DumpError if the stream is corrupt or ends early."""
    codec = _codec_for(path)
    in_stream = False
    while chunk := _read(fileobj):
        while chunk:
            try:
                out = codec.decompress(chunk)
            except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError, zlib.error) as exc:
                raise DumpError(f"corrupt compressed data: {exc}") from None
            in_stream = True
            if out:
                yield out
            chunk = b""
            if codec.eof:
                # A finished frame or stream; concatenated ones follow in unused_data.
                chunk, codec, in_stream = codec.unused_data, _codec_for(path), False
    if in_stream and not isinstance(codec, _Identity):
        raise DumpError("compressed stream ends before its end marker (truncated file)")


def _read(fileobj: BinaryIO) -> bytes:
    try:
        return fileobj.read(READ_CHUNK)
    except OSError as exc:
        raise DumpError(f"read failed: {exc}") from None


@dataclass(frozen=True, slots=True)
class LineBatch:
    """Consecutive lines of one file, kept as one block of bytes.

    `data` is the lines joined by b"\\n" (no final newline), so the parser can
    decode the whole block in one call; `first_line` is the 1-based number of
    its first line, and `lines` splits it when a caller wants them one by one.
    `line_ends` holds the offsets of the newlines in `data` when the reader
    found them (it must, to number the lines), so the parser need not scan
    the block again.
    """

    path: str
    first_line: int
    data: bytes
    line_ends: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")


def newline_offsets(data: bytes) -> np.ndarray:
    """The offset of every b"\\n" in `data`, in order: one numpy pass (4x bytes.count)."""
    return np.flatnonzero(np.frombuffer(data, np.uint8) == 10)


def _cut_long_lines(block: bytes) -> bytes:
    """Cut every line of `block` longer than MAX_LINE_BYTES to that size."""
    if len(block) <= MAX_LINE_BYTES:  # no line can be longer than the block
        return block
    return b"\n".join(line[:MAX_LINE_BYTES] for line in block.split(b"\n"))


def iter_batches(
    fileobj: BinaryIO, path: str, batch_bytes: int = BATCH_BYTES
) -> Iterator[LineBatch | DumpError]:
    """Yield LineBatches of complete lines; a DumpError last if the file is bad.

    Blank lines stay in the batch so that `first_line + index` is the true
    line number; consumers skip them (they are not records). A line longer than
    MAX_LINE_BYTES is cut to that size and left for the parser to reject.
    A partial last line of a truncated file is part of the lost tail.

    Lines are never split one by one here: decompressed chunks are gathered
    until a batch's worth and joined once, up to the newline that ends the
    batch, so the cost per line is C-level (`bytes.find`, a numpy newline
    count), not a Python loop.
    """
    parts: list[bytes | memoryview] = []  # not yet batched; the last may end mid-line
    size = 0
    line_no = 0  # lines yielded so far
    skipping = False  # inside an over-long line: drop bytes up to the next newline
    error: DumpError | None = None

    def batch(block: bytes) -> LineBatch:
        nonlocal line_no
        block = _cut_long_lines(block)
        first = line_no + 1
        ends = newline_offsets(block)
        line_no += len(ends) + 1
        return LineBatch(path, first, block, ends)

    try:
        for chunk in _decompressed_chunks(fileobj, path):
            if skipping:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                chunk, skipping = chunk[cut + 1 :], False
            view, start = memoryview(chunk), 0
            while size + len(chunk) - start >= batch_bytes:
                # The line that crosses the budget ends the batch; the batch is
                # joined straight from the chunks (one copy, no slicing).
                cut = chunk.find(b"\n", start + max(batch_bytes - size - 1, 0))
                if cut < 0:
                    break
                parts.append(view[start:cut])
                yield batch(b"".join(parts))
                parts, size, start = [], 0, cut + 1
            if start < len(chunk):
                parts.append(view[start:] if start else chunk)
                size += len(chunk) - start
            if size > MAX_LINE_BYTES:
                rest = b"".join(parts)
                last = rest.rfind(b"\n")
                if len(rest) - last - 1 > MAX_LINE_BYTES:  # an unterminated over-long line
                    if last >= 0:
                        yield batch(rest[:last])
                    yield batch(rest[last + 1 : last + 1 + MAX_LINE_BYTES])
                    rest, skipping = b"", True
                parts, size = ([rest], len(rest)) if rest else ([], 0)
    except DumpError as exc:
        error = exc
    rest = b"".join(parts)
    last = rest.rfind(b"\n")
    if error is None and rest[last + 1 :].strip():
        yield batch(rest)  # the last line has no newline: keep it
    elif last >= 0:
        yield batch(rest[:last])  # complete lines only; a truncated file's tail is lost
    if error is not None:
        yield DumpError(f"{error} after line {line_no}")
