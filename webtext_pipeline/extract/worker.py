"""A killable worker process that runs extractions under a wall-clock limit.

Why a process: trafilatura can run for minutes on a pathological page and has
raised MemoryError on huge tables. `signal.alarm` only works on the main
thread (Beam runs DoFns on worker threads) and cannot interrupt C code in lxml;
a thread cannot be killed. A child process can: the parent sends the page
over a pipe, waits at most `timeout_s` for the answer, and on a timeout kills
the child (SIGKILL) and starts a fresh one for the next page. The child also
runs under an address-space cap (RLIMIT_AS, Linux/macOS), so a runaway page
raises MemoryError inside the child instead of getting the whole worker
OOM-killed; the child reports it and exits.

One worker serves one thread at a time (a Beam DoFn instance holds one, made in
`setup`). `spawn` is the default start method: forking a multi-threaded Beam
worker is unsafe. A new child imports the libraries and extracts a warm-up
page before it takes work, so import time never counts against a page's limit.
Measured overhead per page (pipe + pickling): see docs/extraction.md.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable

from .core import DEFAULT_CONFIG, ExtractConfig, Extraction, extract_page

_WARMUP_HTML = (
    "<html><head><title>warm-up</title></head><body><article><h1>Warm-up</h1>"
    + "<p>This paragraph only loads the extractors' libraries before the worker takes"
    " real pages, so that import time never counts against a page's time limit.</p>"
    * 6
    + "</article></body></html>"
)

# Outcomes of ExtractWorker.run
OK, TIMEOUT, ERROR = "ok", "timeout", "error"


def _set_memory_cap(headroom_mb: int) -> None:
    if headroom_mb <= 0:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            vsize = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        vsize = 0
    limit = vsize + headroom_mb * (1 << 20)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):  # the platform may refuse
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child_main(conn, core: Callable, headroom_mb: int) -> None:
    """The child's loop: warm up, then answer (html, url, max_date, config) requests."""
    try:
        core(_WARMUP_HTML, None, DEFAULT_CONFIG, "2000-01-01")
        _set_memory_cap(headroom_mb)
        conn.send((OK, None))
    except BaseException as err:  # noqa: BLE001 - report anything, then stop
        conn.send((ERROR, f"worker start failed: {type(err).__name__}: {err}"))
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        html, url, max_date, config = request
        try:
            conn.send((OK, core(html, url, config, max_date)))
        except MemoryError:
            # The heap may be in a bad state: answer, then let the parent start a fresh child.
            conn.send((ERROR, "MemoryError (worker memory cap)"))
            return
        except Exception as err:  # noqa: BLE001 - a page's failure is data
            conn.send((ERROR, f"{type(err).__name__}: {str(err)[:200]}"))


def _default_core(html, url, config, max_date) -> Extraction:
    return extract_page(html, url, config, max_date)


class ExtractWorker:
    """A persistent child process for extractions, killed and replaced on a timeout.

    `core(html, url, config, max_date) -> Extraction` must be a module-level
    function (it is pickled by reference into the child). Not thread-safe: one
    thread per worker.
    """

    def __init__(self, config: ExtractConfig = DEFAULT_CONFIG, core: Callable | None = None):
        self.config = config
        self._core = core or _default_core
        self._proc = None
        self._conn = None
        self.starts = 0
        self.kills = 0

    # -- lifecycle
    def _start(self) -> None:
        ctx = multiprocessing.get_context(self.config.start_method)
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_child_main,
            args=(child, self._core, self.config.memory_headroom_mb),
            name="webtext-extract",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self.starts += 1
        if not parent.poll(self.config.startup_timeout_s):
            self._kill()
            raise RuntimeError("extract worker did not start in time")
        try:
            status, payload = parent.recv()
        except (EOFError, OSError) as err:
            self._kill()
            raise RuntimeError(f"extract worker died while starting: {err}") from err
        if status != OK:
            self._kill()
            raise RuntimeError(payload)

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
                self.kills += 1
            proc.join(5)
            proc.close()

    def close(self) -> None:
        """Stop the child (politely if it is idle)."""
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
        if self._proc is not None:
            self._proc.join(1)
        self._kill()

    def __enter__(self) -> ExtractWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        with contextlib.suppress(Exception):
            self._kill()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- work
    def run(
        self,
        html: str,
        url: str | None,
        max_date: str | None = None,
        config: ExtractConfig | None = None,
    ) -> tuple[str, Extraction | str]:
        """(OK, Extraction) | (TIMEOUT, detail) | (ERROR, message); never raises for a page."""
        config = config or self.config
        if self._core is _default_core and isinstance(html, str):
            # extract_page parses UTF-8 bytes: encoding here (which pickling a str does
            # anyway) spares the child decoding the page and encoding it again
            html = html.encode("utf-8", "replace")
        if self._proc is None or not self._proc.is_alive():
            self._kill()
            self._start()
        try:
            self._conn.send((html, url, max_date, config))
        except (OSError, ValueError):  # the child died between pages: one retry on a fresh one
            self._kill()
            self._start()
            self._conn.send((html, url, max_date, config))
        if not self._conn.poll(config.timeout_s):
            self._kill()
            return TIMEOUT, f"no result after {config.timeout_s:g} s"
        try:
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            code = None
            if self._proc is not None:
                self._proc.join(2)  # the pipe closes a moment before the exit status is known
                code = self._proc.exitcode
            self._kill()
            return ERROR, f"worker process died (exit code {code})"
        if status == ERROR and payload.startswith("MemoryError"):
            self._kill()
        return status, payload
