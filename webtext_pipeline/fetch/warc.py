"""Writing the archive: WARC files of request/response pairs, and their Parquet index.

Layout under `warc_dir`:

    webtext-<worker>-00000.warc.gz        one gzip member per record
    webtext-<worker>-00001.warc.gz        (rotated past `warc_max_bytes` or `warc_max_records`)
    index/webtext-<worker>-00000.warc.gz.parquet    WARC_INDEX_SCHEMA rows

A file is written as `<name>.open` and renamed when it is finished; its index
is written after the rename (temp name, then rename), so a finished WARC with
no index is only ever the result of a crash, and is indexed by a scan like a
foreign WARC. Each record goes to the kernel as soon as it is built: after a
SIGKILL the `.open` file holds every record written before it, and
`recover_orphans` (run before the next job starts) cuts a half-written last
record and finishes the file.

What is stored: the response as received — status line and header bytes as
they came, the body de-chunked but still gzip/deflate encoded. As Common Crawl
does, `Transfer-Encoding` is renamed `X-Crawler-Transfer-Encoding` and a
`Content-Length` that does not match the stored body is renamed
`X-Crawler-Content-Length` (and the true one added). A body cut at a cap
carries `WARC-Truncated`. `X-Webtext-Elapsed-Ms` keeps the exchange time, so
a replay reproduces the row's `elapsed_ms`.

Which responses are indexed: every response, under its own URL — each
redirect hop, the final page, a 404, robots.txt — except 429 and 5xx
(`indexable`): those are transient, so they are archived (every response
is) but not indexed, and a rerun asks again. A scan of a WARC applies the
same rule, so a scan equals the index.

Remote archive folders (gs://, s3://; `store.is_remote(directory)`): each file
is written exactly as above, but in a worker-local staging folder (`staging`,
default `<tmp>/webtext-warc-staging`); once finished and indexed there, the
WARC and then its index are published to the archive folder through the
store (copied, then the local copy deleted). A publication that fails is
kept locally and retried by the next `flush`, which raises if it fails again
(a Beam bundle then fails and is retried). A local archive folder is written
in place, with no staging and no copy.
"""

from __future__ import annotations

import io
import logging
import os
import random
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser
from warcio.warcwriter import WARCWriter

from webtext_pipeline.fetch.client import Capture
from webtext_pipeline.fetch.store import LOCAL, ArchiveStore
from webtext_pipeline.records import WARC_INDEX_SCHEMA

log = logging.getLogger(__name__)

OPEN_SUFFIX = ".open"
INDEX_DIR = "index"
ELAPSED_HEADER = "X-Webtext-Elapsed-Ms"
STAGING_DIR = "webtext-warc-staging"


def default_staging() -> str:
    """The worker-local folder where WARCs for a remote archive are written first."""
    return os.path.join(tempfile.gettempdir(), STAGING_DIR)


def indexable(status: int) -> bool:
    """429 and 5xx are transient: archived, but never indexed, so a rerun asks again."""
    return status != 429 and status < 500


class RawHeaders(StatusAndHeaders):
    """Headers written back as the bytes they came in as (http.client decoded them as
    Latin-1); warcio would otherwise percent-encode any non-ASCII value."""

    def compute_headers_buffer(self, header_filter=None):  # type: ignore[no-untyped-def]
        self.headers_buff = self.to_str(header_filter).encode("latin-1", "replace") + b"\r\n"


def storage_headers(capture: Capture) -> list[tuple[str, str]]:
    """The response headers as stored next to a de-chunked, maybe truncated body."""
    out: list[tuple[str, str]] = []
    length_ok = False
    for name, value in capture.headers:
        lower = name.lower()
        if lower == "transfer-encoding":
            out.append(("X-Crawler-Transfer-Encoding", value))
        elif lower == "content-length":
            if value.strip() == str(len(capture.body)) and not length_ok:
                out.append((name, value))
                length_ok = True
            else:
                out.append(("X-Crawler-Content-Length", value))
        else:
            out.append((name, value))
    if not length_ok:
        out.append(("Content-Length", str(len(capture.body))))
    return out


def http_response_headers(capture: Capture) -> RawHeaders:
    return RawHeaders(
        f"{capture.status} {capture.reason}".rstrip(), storage_headers(capture),
        protocol=capture.protocol,
    )


def replayed_headers(headers: StatusAndHeaders) -> list[tuple[str, str]]:
    """The header list a replay will read back from the WARC for these headers."""
    headers.compute_headers_buffer()
    parser = StatusAndHeadersParser([], verify=False)
    return list(parser.parse(io.BytesIO(headers.headers_buff)).headers)


@dataclass(frozen=True)
class Written:
    """Where a response record went."""

    warc_file: str  # the finished file's name (the file may still be `<name>.open`)
    offset: int
    length: int


class RecordFactory:
    """Builds gzipped WARC records in memory, one factory per thread.

    A warcio WARCWriter calls gethostname() when built and uuid4() (a
    getrandom syscall) per record id; under 64 threads every syscall is a GIL
    hand-off, so the writer is reused per thread and ids come from a seeded
    generator (still random UUIDs, unique per record).
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._ids = random.Random(os.urandom(16))

    def _writer(self) -> WARCWriter:
        writer = getattr(self._local, "writer", None)
        if writer is None:
            writer = self._local.writer = WARCWriter(io.BytesIO(), gzip=True, warc_version="1.1")
        return writer

    def record_id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self._ids.getrandbits(128), version=4)}>"

    def exchange(self, capture: Capture, http_headers: RawHeaders) -> tuple[bytes, int]:
        """The gzipped response + request records of one exchange, and the response's length."""
        writer = self._writer()
        buffer = writer.out = io.BytesIO()
        response_id = self.record_id()
        warc_headers = {"WARC-Record-ID": response_id, "WARC-Date": capture.date,
                        ELAPSED_HEADER: str(capture.elapsed_ms)}
        if capture.peer:
            warc_headers["WARC-IP-Address"] = capture.peer
        if capture.truncated:
            warc_headers["WARC-Truncated"] = capture.truncated
        writer.write_record(writer.create_warc_record(
            capture.url, "response", payload=io.BytesIO(capture.body), length=len(capture.body),
            http_headers=http_headers, warc_headers_dict=warc_headers,
        ))
        response_length = buffer.tell()
        writer.write_record(writer.create_warc_record(
            capture.url, "request", payload=io.BytesIO(b""), length=0,
            http_headers=RawHeaders(capture.request_line, capture.request_headers,
                                    is_http_request=True),
            warc_headers_dict={"WARC-Record-ID": self.record_id(), "WARC-Date": capture.date,
                               "WARC-Concurrent-To": response_id},
        ))
        writer.out = None
        return buffer.getvalue(), response_length

    def warcinfo(self, name: str, info: dict[str, str]) -> bytes:
        writer = self._writer()
        buffer = writer.out = io.BytesIO()
        writer.write_record(writer.create_warcinfo_record(name, info))
        writer.out = None
        return buffer.getvalue()


def write_index(directory: Path, warc_name: str, rows: list[dict]) -> Path:
    """index/<warc_name>.parquet, written under a temp name and renamed."""
    index_dir = directory / INDEX_DIR
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / f"{warc_name}.parquet"
    tmp = index_dir / f".{warc_name}.parquet.{uuid.uuid4().hex[:8]}.tmp"
    table = pa.Table.from_pylist(rows, schema=WARC_INDEX_SCHEMA)
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


@dataclass
class _OpenFile:
    """A WARC file being written: bytes reserved so far, writes still landing."""

    name: str
    fd: int
    size: int = 0
    inflight: int = 0
    responses: int = 0
    closing: bool = False
    rows: list[dict] = field(default_factory=list)


class WarcSink:
    """One worker's WARC output: thread-safe appends, size rotation, index on finish.

    Records are built and gzipped by the calling thread; the lock only reserves
    the byte range (pure Python, no system call), and the bytes then go to
    the file with `os.pwrite` outside it. A lock held across a write would
    make every thread queue behind a holder that is waiting to get the GIL
    back. pwrite puts the record in the kernel at once (no user-space buffer),
    so a SIGKILL loses nothing already written. A file is finished (closed,
    renamed, indexed; published when the archive is remote) by whichever thread
    lands its last write after rotation.

    `archive_dir` is where finished files end up; `directory` is where they are
    written: the same folder when it is local, else `staging` (see the module doc).
    """

    def __init__(self, directory: str | Path, max_bytes: int, info: dict[str, str],
                 worker_id: str | None = None, max_records: int = 20_000,
                 store: ArchiveStore | None = None, staging: str | Path | None = None) -> None:
        self.store = store or LOCAL
        self.remote = self.store.is_remote(str(directory))
        self.archive_dir = str(directory) if self.remote else str(Path(directory))
        self.directory = Path(staging or default_staging()) if self.remote else Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.info = info
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.records = RecordFactory()
        self._lock = threading.Lock()
        self._serial = 0
        self._file: _OpenFile | None = None
        self.finished: list[str] = []
        self._unpublished: list[str] = []  # finished here, not yet in a remote archive_dir

    @property
    def staging(self) -> str | None:
        """The local folder files are written in before publication (None: local archive)."""
        return str(self.directory) if self.remote else None

    def _open(self) -> _OpenFile:
        name = f"webtext-{self.worker_id}-{self._serial:05d}.warc.gz"
        self._serial += 1
        path = self.directory / (name + OPEN_SUFFIX)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        head = self.records.warcinfo(name, self.info)
        os.write(fd, head)
        return _OpenFile(name, fd, size=len(head))

    def write(self, capture: Capture, http_headers: RawHeaders, index: bool = True) -> Written:
        """Append one exchange; index its response under `capture.url` when `index`."""
        blob, response_length = self.records.exchange(capture, http_headers)
        with self._lock:
            if self._file is None:
                self._file = self._open()
            target = self._file
            offset = target.size
            target.size += len(blob)
            target.inflight += 1
            target.responses += 1
            if index:
                target.rows.append({
                    "url": capture.url, "warc_file": target.name, "offset": offset,
                    "length": response_length, "status": capture.status,
                    "fetched_at": capture.date,
                })
            if target.size >= self.max_bytes or target.responses >= self.max_records:
                target.closing = True
                self._file = None
        try:
            os.pwrite(target.fd, blob, offset)
        finally:
            self._landed(target)
        return Written(target.name, offset, response_length)

    def _landed(self, target: _OpenFile) -> None:
        with self._lock:
            target.inflight -= 1
            done = target.closing and target.inflight == 0
        if done:
            self._finish(target)

    def _finish(self, target: _OpenFile) -> None:
        os.close(target.fd)
        temp = self.directory / (target.name + OPEN_SUFFIX)
        if target.responses == 0:
            temp.unlink(missing_ok=True)
            return
        os.replace(temp, self.directory / target.name)
        write_index(self.directory, target.name, target.rows)
        if self.remote:
            try:
                self._publish(target.name)
            except Exception as exc:  # kept here; the next flush tries again
                log.warning("could not publish %s to %s (%s); retrying at the next flush",
                            target.name, self.archive_dir, exc)
                with self._lock:
                    self._unpublished.append(target.name)
        with self._lock:
            self.finished.append(target.name)

    def _publish(self, name: str) -> None:
        """Copy a finished WARC, then its index, to the remote archive folder (each local
        copy deleted once copied); what was already published is not sent again."""
        index_name = f"{name}.parquet"
        for local, dest in (
            (self.directory / name, self.store.join(self.archive_dir, name)),
            (self.directory / INDEX_DIR / index_name,
             self.store.join(self.archive_dir, INDEX_DIR, index_name)),
        ):
            if local.exists():
                self.store.publish(str(local), dest)

    def publish_pending(self) -> None:
        """Retry the publications that failed; raise if one fails again."""
        with self._lock:
            pending, self._unpublished = self._unpublished, []
        failed: list[str] = []
        error: Exception | None = None
        for name in pending:
            try:
                self._publish(name)
            except Exception as exc:
                failed.append(name)
                error = exc
        if failed:
            with self._lock:
                self._unpublished.extend(failed)
            raise RuntimeError(
                f"could not publish {', '.join(failed)} to {self.archive_dir}: {error}"
            ) from error

    def flush(self) -> None:
        """Finish the current file (now, or when its last in-flight write lands); for a
        remote archive, also retry any publication that failed before."""
        with self._lock:
            target, self._file = self._file, None
            if target is not None:
                target.closing = True
            done = target is not None and target.inflight == 0
        if done:
            assert target is not None
            self._finish(target)
        if self._unpublished:
            self.publish_pending()

    def close(self) -> None:
        self.flush()
