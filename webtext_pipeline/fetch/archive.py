"""Reading the archive: which URLs it holds, and a stored response by location.

`ArchiveIndex.load(dirs)` maps URL -> where its response record is, from
each directory's `index/*.parquet` and, for a WARC with no index of ours
(a Common Crawl file, the sample web, a crashed run's `.open` file), by
scanning it with warcio's ArchiveIterator. A scanned finished WARC gets its
index written next to it when the directory is writable, so the scan happens
once. The map holds every URL of the cache in memory, packed (38 B a URL:
~1.7 GB for 45M URLs, see `packed_index`); the Beam fetch job does not load it
on workers but splits it by host first (`partitioned_index`), from the same
`archive_files` / `archive_file_rows` listing and reading.

Remote folders (gs://, s3://: `store.is_remote(directory)`) are read through
the injected `ArchiveStore` (see `store`): their `index/*.parquet` and WARC
files are listed, an index file is read whole, a WARC without an index is
scanned as a stream and its index kept in memory only (never written into a
folder that may be someone else's bucket), and `read_response` opens the
WARC, seeks and reads one record.

A finished WARC that cannot be read to its end (garbage, a cut download, a
corrupt gzip member) gives the records before the damage, and the damage is
reported (`ArchiveRows.damage`, a warning, and the Beam step's list of damaged
WARCs) rather than passing as an archive that simply lacks those URLs. A
crashed writer's `.open` file is expected to end torn and is not reported.

When a URL occurs more than once, the latest WARC-Date wins (then file name,
then offset): the newest capture. 429 and 5xx responses are not indexed
(see `warc.indexable`), so a URL that only ever got those is fetched again.
"""

from __future__ import annotations

import io
import logging
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader

from webtext_pipeline.fetch.location import ArchivedAt, RecentLocations
from webtext_pipeline.fetch.packed_index import PackedLocations
from webtext_pipeline.fetch.response import StoredResponse
from webtext_pipeline.fetch.store import LOCAL, ArchiveStore, base_name
from webtext_pipeline.fetch.urls import BadUrl, normalize_url
from webtext_pipeline.fetch.warc import (
    ELAPSED_HEADER,
    INDEX_DIR,
    OPEN_SUFFIX,
    indexable,
    write_index,
)

log = logging.getLogger(__name__)

WARC_SUFFIXES = (".warc.gz", ".warc")


# Responses archived by this process that stay indexed in memory (~0.5 KB each).
RECENT_LIMIT = 20_000


def archive_key(url: str) -> str:
    """The index key of a URL: its normal form, else the text as it is."""
    try:
        return normalize_url(url)
    except BadUrl:
        return url.strip()


class ArchiveIndex:
    """URL -> ArchivedAt, for every response in a set of archive directories.

    What was loaded at start (the caches, and OUT/warc from earlier runs) is kept
    whole, packed (`PackedLocations`, 38 B a URL); responses this process archives
    afterwards go to a bounded recent set (`recent_limit`, least recently archived
    dropped first), so a worker's memory stays flat in the number of URLs it
    fetches. A later run finds them again in the WARC index files.
    """

    def __init__(self, recent_limit: int = RECENT_LIMIT) -> None:
        self._loaded = PackedLocations()
        self._recent = RecentLocations(recent_limit)
        self.scanned: list[str] = []  # WARC files indexed by scanning (for logs and tests)
        self.damaged: list[str] = []  # "name: damage" of WARCs not readable to their end

    def __len__(self) -> int:
        return len(self._loaded) + sum(
            1 for key in self._recent if self._loaded.get(key) is None
        )

    def __contains__(self, url: str) -> bool:
        return self.get(url) is not None

    def get(self, url: str, normal: bool = False) -> ArchivedAt | None:
        """Where `url` is archived; `normal` when it is already in normal form (faster)."""
        key = url if normal else archive_key(url)
        where = self._recent.get(key)
        return where if where is not None else self._loaded.get(key)

    def memory_bytes(self) -> int:
        """What the loaded part's arrays hold (the recent set is bounded separately)."""
        return self._loaded.nbytes()

    def remember(self, url: str, where: ArchivedAt, normal: bool = False) -> None:
        """A response this process just archived (kept among the `recent_limit` newest)."""
        self._recent.remember(url if normal else archive_key(url), where)

    def add(self, url: str, where: ArchivedAt, normal: bool = False) -> None:
        """A response found in an archive directory (the newest capture of a URL wins)."""
        key = url if normal else archive_key(url)
        self._loaded.add(key, where.directory, where.warc_file, where.offset, where.length,
                         where.status, where.fetched_at)

    def add_rows(self, directory: str, rows: Iterable[dict]) -> None:
        for row in rows:
            self._loaded.add(archive_key(row["url"]), directory, row["warc_file"],
                             int(row["offset"]), int(row["length"]), int(row["status"]),
                             str(row["fetched_at"]))

    @classmethod
    def load(cls, directories: Iterable[str], write_missing: bool = True,
             store: ArchiveStore | None = None) -> ArchiveIndex:
        """Index every WARC under `directories` (not recursive); see the module doc.
        Remote folders go through `store` (the default reaches local folders only)."""
        index = cls()
        store = store or LOCAL
        for directory in directories:
            if store.is_remote(str(directory)):
                index.load_remote(str(directory), store)
            else:
                index.load_directory(Path(directory), write_missing)
        return index

    def load_remote(self, directory: str, store: ArchiveStore) -> None:
        """A remote folder: its index files, and a streaming scan (kept in memory) of each
        WARC without one. An empty or missing folder holds nothing (no error: a bucket
        has no folders); the Beam layer checks `--warc-cache` folders up front."""
        for file in archive_files(directory, store):
            self._add_file(file, store, write_missing=False)

    def load_directory(self, directory: Path, write_missing: bool = True) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"WARC cache directory not found: {directory}")
        for file in archive_files(str(directory)):
            self._add_file(file, LOCAL, write_missing)

    def _add_file(self, file: ArchiveFile, store: ArchiveStore, write_missing: bool) -> None:
        found = archive_file_rows(file, store, write_missing)
        if found.scanned:
            self.scanned.append(file.name)
        if found.damage:
            self.damaged.append(f"{file.name}: {found.damage}")
        self.add_rows(file.directory, found.rows)


@dataclass(frozen=True)
class ArchiveFile:
    """One WARC of an archive directory, and its index file when it has one."""

    directory: str
    name: str  # the file in `directory` (a crashed writer's `.open` file included)
    warc_name: str  # the finished WARC's name, which the index rows give
    index: str | None  # index/<warc_name>.parquet, when there is one


def archive_files(directory: str, store: ArchiveStore = LOCAL) -> list[ArchiveFile]:
    """The WARCs of one archive directory (not recursive), each with its index file if
    any. Local folders also list a killed writer's `.open` files (to be scanned)."""
    if store.is_remote(directory):
        names = sorted(map(base_name, store.list(store.join(directory, "*"))))
        indexes = {base_name(p) for p in store.list(store.join(directory, INDEX_DIR, "*.parquet"))}
    else:
        names = sorted(os.listdir(directory))
        index_dir = Path(directory) / INDEX_DIR
        indexes = set(os.listdir(index_dir)) if index_dir.is_dir() else set()
    files = []
    open_suffixes = tuple(s + OPEN_SUFFIX for s in WARC_SUFFIXES)
    for name in names:
        if name.endswith(WARC_SUFFIXES):
            index = f"{name}.parquet" if f"{name}.parquet" in indexes else None
            files.append(ArchiveFile(directory, name, name, index and store.join(
                directory, INDEX_DIR, index)))
        elif name.endswith(open_suffixes) and not store.is_remote(directory):
            files.append(ArchiveFile(directory, name, name[: -len(OPEN_SUFFIX)], None))
    return files


class ArchiveRows(NamedTuple):
    """What one WARC contributes to the index."""

    rows: list[dict]
    scanned: bool  # it had no readable index file, so the WARC itself was read
    damage: str | None  # a finished WARC not readable to its end: where it stopped, and why


def archive_file_rows(file: ArchiveFile, store: ArchiveStore = LOCAL,
                      write_missing: bool = True) -> ArchiveRows:
    """The index rows of one WARC. The index file is read when there is a readable one;
    otherwise the WARC is scanned and, for a finished local WARC in a writable folder
    (`write_missing`), its index written so the scan happens once (a damaged one's is not:
    the next run reports the damage again)."""
    remote = store.is_remote(file.directory)
    if file.index is not None:
        try:
            if remote:
                with store.open(file.index) as handle:
                    return ArchiveRows(pq.read_table(io.BytesIO(handle.read())).to_pylist(),
                                       False, None)
            return ArchiveRows(pq.read_table(file.index).to_pylist(), False, None)
        except Exception as exc:  # a torn or foreign file: scan the WARC instead
            log.warning("unreadable WARC index %s (%s); scanning its WARC", file.index, exc)
    path = store.join(file.directory, file.name)
    try:
        if remote:
            with store.open(path) as handle:
                scan = _scan_stream(handle, file.warc_name, path)
        else:
            scan = scan_warc(Path(path), file.warc_name)
    except OSError as exc:
        scan = WarcScan([], 0, f"cannot be opened: {exc}")
    finished = file.name == file.warc_name
    if scan.error is None or not finished:  # a `.open` file's torn tail is expected
        if (finished and not remote and write_missing
                and os.access(file.directory, os.W_OK)):
            write_index(Path(file.directory), file.warc_name, scan.rows)
        return ArchiveRows(scan.rows, True, None)
    damage = f"read stopped at byte {scan.end} ({len(scan.rows)} responses before it): " \
             f"{scan.error}"
    log.warning("damaged WARC %s: %s", path, damage)
    return ArchiveRows(scan.rows, True, damage)


def _target(record) -> str:  # type: ignore[no-untyped-def]
    return (record.rec_headers.get_header("WARC-Target-URI") or "").strip().strip("<>")


class WarcScan(NamedTuple):
    """What a scan of one WARC found."""

    rows: list[dict]  # index rows of its HTTP responses
    end: int  # the end offset of its last complete record
    error: str | None  # why reading stopped before the end of the file, if it did


def scan_warc(path: Path, warc_name: str) -> WarcScan:
    """Scan one WARC for its HTTP responses. Stops at a torn tail (a crashed writer's
    last record, or damage) with the records before it and the reason."""
    with open(path, "rb") as handle:
        return _scan_stream(handle, warc_name, str(path))


def _scan_stream(handle: BinaryIO, warc_name: str, label: str) -> WarcScan:
    """scan_warc's reading part, over any binary stream read from its start (it seeks only
    at the end, to check the last record and compare with the size)."""
    rows: list[dict] = []
    end = 0
    last: tuple[int, int, dict | None] | None = None
    error = None
    declared = None  # the last record's Content-Length
    iterator = ArchiveIterator(handle, check_digests=False)
    try:
        for record in iterator:
            row = None
            url = _target(record)
            if (record.rec_type == "response" and record.http_headers is not None
                    and url.startswith(("http://", "https://"))):
                try:
                    status = int(record.http_headers.get_statuscode())
                except (TypeError, ValueError):
                    status = 0
                row = {"url": url, "warc_file": warc_name, "status": status,
                       "fetched_at": record.rec_headers.get_header("WARC-Date") or ""}
            offset = iterator.get_record_offset()
            length = iterator.get_record_length()
            if row is not None and indexable(row["status"]):
                row.update(offset=offset, length=length)
                rows.append(row)
            else:
                row = None
            last = (offset, length, row)
            end = offset + length
            declared = record.rec_headers.get_header("Content-Length") or ""
    except Exception as exc:  # torn gzip member, truncated record, not a WARC at all
        text = " ".join(str(exc).split())[:300]  # one printable line, for the damaged list
        error = "".join(c if c.isprintable() else "?" for c in text) or type(exc).__name__
    scan = WarcScan(rows, end, error)
    if last is not None and label.endswith((".gz", ".gz" + OPEN_SUFFIX)):
        scan = _check_last_member(handle, scan, last)
    if scan.error is None:  # warcio ends quietly at a record cut short, or cut in its headers
        plain = label.endswith((".warc", ".warc" + OPEN_SUFFIX))
        scan = _check_tail(handle, scan, last, declared if plain else None)
    if scan.error is not None:
        log.info("stopped scanning %s at offset %d: %s", label, scan.end, scan.error)
    return scan


def _drop_last(scan: WarcScan, last: tuple[int, int, dict | None]) -> WarcScan:
    """The scan without its last record, which was cut short."""
    offset, _length, row = last
    if row is not None:
        scan.rows.remove(row)
    return scan._replace(end=offset, error=scan.error or "the last record is cut short")


def _check_tail(handle: BinaryIO, scan: WarcScan, last: tuple[int, int, dict | None] | None,
                declared: str | None) -> WarcScan:
    """Compare where the records ended with the stream's size, when it can seek: bytes
    left over (other than the blank line that ends an uncompressed WARC) mean the file
    was cut. In an uncompressed WARC (`declared`: its last record's Content-Length) warcio
    passes a record cut short as a shorter one: one shorter than its declared content is."""
    if last is not None and declared is not None and (
            not declared.isdigit() or last[1] < int(declared)):
        return _drop_last(scan, last)
    try:
        size = handle.seek(0, io.SEEK_END)
        if size > scan.end:
            handle.seek(scan.end)
            tail = handle.read(16)
    except (OSError, ValueError, AttributeError):
        return scan
    if size > scan.end and (size - scan.end > 16 or tail.strip()):
        return scan._replace(error=f"{size - scan.end} bytes after the last complete record")
    return scan


def _check_last_member(handle: BinaryIO, scan: WarcScan, last: tuple[int, int, dict | None]
                       ) -> WarcScan:
    """warcio passes a gzip member cut short as a whole record: check that the last record
    is one whole gzip member (when the stream can seek), else drop it."""
    offset, length, _row = last
    try:
        handle.seek(offset)
        data = handle.read(length)
    except (OSError, ValueError, AttributeError):
        return scan
    engine = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        while data and not engine.eof:
            engine.decompress(data, 1 << 20)
            data = engine.unconsumed_tail
    except zlib.error:
        pass
    return scan if engine.eof else _drop_last(scan, last)


def _open_staged(where: ArchivedAt) -> BinaryIO | None:
    """The local staging copy of a record written for a remote archive, if still there
    (a file opened before its publication deletes it stays readable)."""
    if not where.staged:
        return None
    for name in (where.warc_file + OPEN_SUFFIX, where.warc_file):
        try:
            return open(Path(where.staged) / name, "rb")
        except FileNotFoundError:
            continue
    return None


def _open_warc(where: ArchivedAt, store: ArchiveStore) -> BinaryIO:
    handle = _open_staged(where)
    if handle is not None:
        return handle
    if store.is_remote(where.directory):
        return store.open(store.join(where.directory, where.warc_file))
    directory = Path(where.directory)
    path = directory / where.warc_file
    if not path.exists():
        path = directory / (where.warc_file + OPEN_SUFFIX)
    return open(path, "rb")


def read_response(where: ArchivedAt, max_bytes: int,
                  store: ArchiveStore | None = None) -> StoredResponse:
    """The stored response at `where`; a body over `max_bytes` is cut ("length").
    A remote `where.directory` is read through `store` (open, seek, read)."""
    with _open_warc(where, store or LOCAL) as handle:
        handle.seek(where.offset)
        record = next(iter(ArchiveIterator(handle, check_digests=False)))
        headers = record.http_headers
        stream = record.raw_stream
        if (headers.get_header("transfer-encoding") or "").lower() == "chunked":
            stream = ChunkedDataReader(stream)  # a foreign WARC that kept the chunking
        body = stream.read(max_bytes + 1)
        truncated = record.rec_headers.get_header("WARC-Truncated") or ""
        if len(body) > max_bytes:
            body, truncated = body[:max_bytes], "length"
        try:
            elapsed = int(record.rec_headers.get_header(ELAPSED_HEADER) or 0)
        except ValueError:
            elapsed = 0
        return StoredResponse(
            url=archive_key(_target(record)),
            status=int(headers.get_statuscode()),
            headers=list(headers.headers),
            body=body,
            truncated=truncated,
            fetched_at=record.rec_headers.get_header("WARC-Date") or "",
            elapsed_ms=elapsed,
            warc_file=where.warc_file,
            warc_offset=where.offset,
            warc_length=where.length,
        )


def recover_orphans(warc_dir: str | Path) -> list[str]:
    """Finish the `.open` WARCs a killed run left: cut a torn last record, rename, index.

    Run it only while no fetcher writes to `warc_dir` (before a job starts):
    another worker's file in progress is also named `.open`.
    """
    directory = Path(warc_dir)
    recovered: list[str] = []
    if not directory.is_dir():
        return recovered
    for entry in sorted(directory.iterdir()):
        if not entry.name.endswith(".warc.gz" + OPEN_SUFFIX):
            continue
        final = entry.name[: -len(OPEN_SUFFIX)]
        rows, end, _error = scan_warc(entry, final)
        if not rows:
            entry.unlink()
            continue
        with open(entry, "r+b") as handle:
            handle.truncate(end)
        os.replace(entry, directory / final)
        write_index(directory, final, rows)
        recovered.append(final)
    return recovered
