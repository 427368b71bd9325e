"""The Fetcher: link rows in, one fetched row or one Reject out per row.

    fetcher = Fetcher(config)             # cheap, picklable: sessions are built lazily
    for out in fetcher.fetch_many(rows):  # rows carry `url` (+ the link columns)
        ...                               # dict (FETCHED_SCHEMA) or Reject
    fetcher.close()

How a URL moves: each URL is a small state machine (`_Task`) driven by the
thread that iterates `fetch_many`. One step is one HTTP exchange — or one
replay of a stored response — run on a worker thread; the step's verdict
sends the task back to the scheduler: done, follow a redirect (a new hop,
scheduled on ITS host), or retry later (a timer, not a sleeping thread). So a
worker thread never waits for politeness, a retry's backoff or robots.txt:
only for the network. Per host, `HostQueues` keeps at most
`per_host_concurrency` requests in flight and `per_host_delay` between starts.

Before a hop goes to the network: the archive is asked first (a URL in a
WARC cache is replayed, not fetched), then the SSRF guard's literal check,
then robots.txt for the hop's origin (fetched once per origin, through the
same machinery, so it too comes from the archive when it is there). Offline,
a hop that passes those checks is `not_in_archive`; an origin whose
robots.txt is not archived is not restricted (its archived pages were
allowed when they were fetched).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import random
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from requests.cookies import RequestsCookieJar

from webtext_pipeline import __version__
from webtext_pipeline.fetch.archive import ArchivedAt, ArchiveIndex, read_response
from webtext_pipeline.fetch.client import TransportError, exchange, retry_after_seconds
from webtext_pipeline.fetch.config import FetchConfig
from webtext_pipeline.fetch.connection import build_session
from webtext_pipeline.fetch.guard import AddressPolicy, BlockedAddress
from webtext_pipeline.fetch.partitioned_index import PartitionedArchiveIndex
from webtext_pipeline.fetch.politeness import HostQueues
from webtext_pipeline.fetch.response import (
    Failure,
    Page,
    Redirect,
    StoredResponse,
    interpret,
    wanted_body_bytes,
)
from webtext_pipeline.fetch.robots import (
    ALLOW_ALL,
    MAX_ROBOTS_REDIRECTS,
    RobotsCache,
    RobotsRules,
    product_token,
    robots_verdict,
    rules_for_status,
)
from webtext_pipeline.fetch.store import LOCAL, ArchiveStore
from webtext_pipeline.fetch.urls import (
    BadUrl,
    host_of,
    normalize_url,
    origin_of,
    robots_url,
)
from webtext_pipeline.fetch.warc import (
    WarcSink,
    http_response_headers,
    indexable,
    replayed_headers,
)
from webtext_pipeline.fetch.watchdog import Watchdog
from webtext_pipeline.records import FETCHED_SCHEMA, Reject, stable_id

log = logging.getLogger(__name__)

STAGE = "fetch"
FetchedRow = dict[str, Any]
FetchOutput = FetchedRow | Reject
FETCHED_COLUMNS = tuple(FETCHED_SCHEMA.names)


@dataclass
class _Task:
    """One URL (or one origin's robots.txt) on its way through redirects and retries."""

    seq: int
    kind: str  # "page" | "robots"
    key: str  # the reject key: the input URL as given
    url: str  # the current hop, normal form
    row: Mapping[str, Any] | None = None
    origin: str = ""  # robots tasks: the origin whose rules they fetch
    visited: set[str] = field(default_factory=set)
    hops: int = 0
    attempt: int = 0
    started: float | None = None  # monotonic time of the first request (deadline anchor)
    elapsed_ms: int = 0  # summed over the responses acted on
    jar: RequestsCookieJar | None = None
    skip_archive: bool = False  # this hop's stored copy was unreadable


@dataclass
class _Done:
    """What a worker thread reports back about one step."""

    task: _Task
    host: str | None = None  # politeness slot to release (live steps)
    verdict: Redirect | Page | Failure | RobotsRules | None = None
    archived: tuple[str, ArchivedAt] | None = None  # (url, where) for the index
    retry: Failure | None = None  # retry later, or end with this failure
    retry_after: float | None = None
    replay_failed: bool = False
    live: bool = False
    replayed: bool = False
    error: BaseException | None = None


@dataclass
class _Call:
    """The state of one fetch_many call (one batch)."""

    done: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    out: deque = field(default_factory=deque)
    direct: deque = field(default_factory=deque)  # (task, where): replays, no politeness
    timers: list = field(default_factory=list)  # (due, seq, task): retries
    robots_waiting: dict[str, list[_Task]] = field(default_factory=dict)
    open_tasks: int = 0  # input rows without an output yet
    inflight: int = 0


class Fetcher:
    """Fetches link rows politely, archives every response, replays what is archived.

    One Fetcher per worker process (a Beam DoFn builds it in setup()); it is not
    re-entrant: one `fetch_many` at a time. Pickling keeps only the config and store.

    `store` reaches remote archive folders (`warc_dir`, `warc_cache` on gs://, s3://);
    the default reaches local folders only (see `fetch.store`).
    """

    def __init__(self, config: FetchConfig | None = None,
                 store: ArchiveStore | None = None) -> None:
        self.config = config or FetchConfig()
        self.store = store or LOCAL
        self.stats: Counter[str] = Counter()
        self._ready = False
        self._seq = itertools.count()

    # --- lifecycle ---------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "store": self.store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state.get("store"))  # type: ignore[misc]

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure(self) -> None:
        """Build sessions, threads, the archive index and the WARC sink on first use."""
        if self._ready:
            return
        cfg = self.config
        self._policy = AddressPolicy(cfg.allow_private_addresses, cfg.allowed_networks)
        self._archive: ArchiveIndex | PartitionedArchiveIndex
        if cfg.index_partitions_dir:
            self._archive = PartitionedArchiveIndex(
                cfg.index_partitions_dir, cfg.index_partitions, self.store)
        else:
            self._archive = ArchiveIndex.load(
                [d for d in cfg.cache_dirs
                 if d != cfg.warc_dir or self.store.is_remote(d) or os.path.isdir(d)],
                store=self.store,
            )
        self._sink: WarcSink | None = None
        if cfg.warc_dir and not cfg.offline:
            self._sink = WarcSink(cfg.warc_dir, cfg.warc_max_bytes, info={
                "software": f"webtext/{__version__} (warcio, requests)",
                "format": "WARC File Format 1.1",
                "http-header-user-agent": cfg.user_agent,
                "robots": "obey" if cfg.respect_robots else "ignore",
            }, max_records=cfg.warc_max_records, store=self.store, staging=cfg.warc_staging)
        self._session = build_session(cfg)
        self._watchdog = Watchdog()
        self._pool = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="fetch")
        self._hosts: HostQueues[_Task] = HostQueues(cfg.per_host_concurrency, cfg.per_host_delay)
        self._robots = RobotsCache(cfg.robots_cache_size, cfg.robots_ttl, cfg.robots_failure_ttl)
        self._product = product_token(cfg.user_agent)
        self._rng = random.Random(cfg.seed)
        self._ready = True

    def open(self) -> Fetcher:
        """Build everything now (else on first use): e.g. in a DoFn's setup(), so the
        archive index is loaded before the first bundle."""
        self._ensure()
        return self

    def flush(self) -> None:
        """Finish the current WARC file (rename it, write its index); e.g. per bundle."""
        if self._ready and self._sink is not None:
            self._sink.flush()

    def close(self) -> None:
        if not self._ready:
            return
        self._pool.shutdown(wait=True)
        self._watchdog.stop()
        self._session.close()
        if self._sink is not None:
            self._sink.close()
        self._ready = False

    @property
    def archive_size(self) -> int:
        self._ensure()
        return len(self._archive)

    # --- the public calls ----------------------------------------------------------

    def fetch_one(self, row: Mapping[str, Any] | str) -> FetchOutput:
        """One row (or a bare URL) -> its fetched row or Reject."""
        return next(iter(self.fetch_many([row])))

    def fetch_many(self, rows: Iterable[Mapping[str, Any] | str]) -> Iterator[FetchOutput]:
        """Every input row (a link row with `url`, or a bare URL) yields exactly one
        output — a FETCHED_SCHEMA dict or a Reject — in completion order."""
        self._ensure()
        cfg = self.config
        call = _Call()
        source = iter(rows)
        exhausted = False
        finished = False
        try:
            while True:
                while not exhausted and call.open_tasks < cfg.max_pending:
                    try:
                        row = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    self._admit(call, row)
                while call.out:
                    yield call.out.popleft()
                now = time.monotonic()
                while call.timers and call.timers[0][0] <= now:
                    self._route(call, heapq.heappop(call.timers)[2], continuing=True)
                self._dispatch(call, now)
                while call.out:
                    yield call.out.popleft()
                if exhausted and call.open_tasks == 0:
                    finished = True
                    return
                self._wait(call)
                while call.out:
                    yield call.out.popleft()
        finally:
            if not finished:
                self._abandon(call)

    # --- scheduling (the iterating thread only) -----------------------------------------

    def _admit(self, call: _Call, row: Mapping[str, Any] | str) -> None:
        call.open_tasks += 1
        if isinstance(row, str):
            row = {"url": row}
        given = row.get("url") if isinstance(row, Mapping) else None
        key = "" if given is None else str(given)
        try:
            url = normalize_url(key)
        except BadUrl as exc:
            self._finish(call, _Task(next(self._seq), "page", key, key, row),
                         Failure("bad_url", str(exc)))
            return
        task = _Task(next(self._seq), "page", key, url, row=row, visited={url})
        self._route(call, task)

    def _route(self, call: _Call, task: _Task, continuing: bool = False) -> None:
        """Send the task's current hop to the archive, a reject, robots.txt, or its host."""
        cfg = self.config
        if not task.skip_archive and (where := self._archive.get(task.url, normal=True)):
            call.direct.append((task, where))
            return
        if cfg.offline and task.kind == "robots":
            self._robots_done(call, task, ALLOW_ALL)  # no robots.txt archived: nothing to obey
            return
        host = host_of(task.url)
        try:
            self._policy.check_literal(host)
        except BlockedAddress as exc:
            self._end_task(call, task, Failure("blocked_address", str(exc)))
            return
        if task.kind == "page" and cfg.respect_robots:
            origin = origin_of(task.url)
            rules = self._robots.get(origin)
            if rules is None:
                waiting = call.robots_waiting.get(origin)
                if waiting is not None:
                    waiting.append(task)
                    return
                call.robots_waiting[origin] = [task]
                robots = robots_url(origin)
                self.stats["robots_fetches"] += 1
                self._route(call, _Task(next(self._seq), "robots", robots, robots,
                                        origin=origin, visited={robots}), continuing=True)
                return
            if rules.crawl_delay:
                self._hosts.set_delay(host, min(rules.crawl_delay, cfg.max_crawl_delay))
            if (verdict := rules.verdict(task.url)) is not None:
                self._finish(call, task, Failure(*verdict))
                return
        if cfg.offline:
            self._finish(call, task, Failure("not_in_archive", task.url))
            return
        self._hosts.push(host, task, front=continuing or task.started is not None)

    def _dispatch(self, call: _Call, now: float) -> None:
        cfg = self.config
        while call.inflight < cfg.concurrency:
            if call.direct:
                task, where = call.direct.popleft()
                self._submit(call, self._replay_step, task, where)
                continue
            ready = self._hosts.pop_ready(now)
            if ready is None:
                break
            host, task = ready
            if task.started is None:
                task.started = now
            elif now >= task.started + cfg.deadline:
                self._hosts.done(host)
                self._end_task(call, task, Failure("timeout", f"deadline of {cfg.deadline:g} s"))
                continue
            self._submit(call, self._live_step, task, host)
            self.stats["dispatched"] += 1
            if self.stats["dispatched"] % 5000 == 0 and self._hosts.n_hosts > 50_000:
                self._hosts.forget_idle(now)

    def _submit(self, call: _Call, step, *args) -> None:  # type: ignore[no-untyped-def]
        call.inflight += 1
        self._pool.submit(self._run_step, call.done, step, *args)

    @staticmethod
    def _run_step(done: queue.SimpleQueue, step, task: _Task, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            result = step(task, *args)
        except BaseException as exc:  # a bug: re-raised by the scheduler, with the URL
            host = args[0] if args and isinstance(args[0], str) else None
            result = _Done(task, host=host, error=exc)
        done.put(result)

    def _wait(self, call: _Call) -> None:
        """Block until a step finishes or a host/timer becomes ready; handle what finished."""
        now = time.monotonic()
        can_start = call.inflight < self.config.concurrency
        if can_start and call.direct:
            return
        wake = [t for t in (self._hosts.next_time(), call.timers[0][0] if call.timers else None)
                if t is not None]
        if call.inflight == 0 and not wake:
            raise RuntimeError(f"fetch scheduler stalled with {call.open_tasks} rows open")
        timeout = min(wake) - now if wake and can_start else 1.0
        try:
            done = call.done.get(timeout=min(max(timeout, 0.0), 1.0))
        except queue.Empty:
            return
        while done is not None:
            self._handle(call, done)
            try:
                done = call.done.get_nowait()
            except queue.Empty:
                done = None

    def _handle(self, call: _Call, done: _Done) -> None:
        call.inflight -= 1
        if done.host is not None:
            self._hosts.done(done.host)
        if done.archived is not None:
            self._archive.remember(*done.archived, normal=True)
        task = done.task
        if done.error is not None:
            raise RuntimeError(f"fetch step failed on {task.url}") from done.error
        if done.live:
            self.stats["requests"] += 1
        if done.replayed:
            self.stats["replayed"] += 1
        if done.replay_failed:
            task.skip_archive = True
            self._route(call, task, continuing=True)
            return
        task.skip_archive = False
        if done.retry is not None:
            self._retry_later(call, task, done)
            return
        verdict = done.verdict
        if task.kind == "robots":
            self._robots_step_done(call, task, verdict)
            return
        if isinstance(verdict, Redirect):
            self._follow(call, task, verdict.target)
        else:
            assert isinstance(verdict, Page | Failure)
            self._finish(call, task, verdict)

    def _retry_later(self, call: _Call, task: _Task, done: _Done) -> None:
        cfg = self.config
        now = time.monotonic()
        if done.retry_after is not None:
            delay = done.retry_after
            if done.host is not None:
                self._hosts.pause(done.host, now + delay)
        else:
            delay = min(cfg.backoff_max, cfg.backoff_base * 2**task.attempt)
            delay *= self._rng.uniform(0.5, 1.0)
        task.attempt += 1
        assert done.retry is not None
        if task.started is not None and now + delay >= task.started + cfg.deadline:
            self._end_task(call, task, done.retry)
            return
        self.stats["retries"] += 1
        heapq.heappush(call.timers, (now + delay, task.seq, task))

    def _follow(self, call: _Call, task: _Task, target: str) -> None:
        if target in task.visited:
            self._finish(call, task, Failure("redirect_loop", f"{task.url} -> {target}"))
            return
        if task.hops >= self.config.max_redirects:
            self._finish(call, task, Failure(
                "too_many_redirects", f"more than {self.config.max_redirects}, last {target}"))
            return
        task.visited.add(target)
        task.url = target
        task.hops += 1
        task.attempt = 0
        self._route(call, task, continuing=True)

    def _end_task(self, call: _Call, task: _Task, failure: Failure) -> None:
        if task.kind == "robots":
            self._robots_step_done(call, task, failure)
        else:
            self._finish(call, task, failure)

    def _robots_step_done(self, call: _Call, task: _Task, verdict: object) -> None:
        if isinstance(verdict, Redirect):
            if task.hops < MAX_ROBOTS_REDIRECTS and verdict.target not in task.visited:
                task.visited.add(verdict.target)
                task.url = verdict.target
                task.hops += 1
                task.attempt = 0
                self._route(call, task, continuing=True)
                return
            verdict = ALLOW_ALL  # RFC 9309: too many redirects -> unavailable
        if isinstance(verdict, Failure):
            if task.hops > 0:
                verdict = ALLOW_ALL  # a redirect to nowhere: robots.txt "unavailable"
            elif verdict.reason in ("dns_error", "connect_error", "timeout", "blocked_address"):
                verdict = RobotsRules(failure=verdict.reason, detail=verdict.detail)
            elif verdict.reason[5:].isdigit():  # http_503 ended by the deadline mid-retries
                verdict = rules_for_status(int(verdict.reason[5:]), b"", self._product)
            else:
                verdict = ALLOW_ALL  # bad_url on a robots redirect, ...
        assert isinstance(verdict, RobotsRules)
        self._robots_done(call, task, verdict)

    def _robots_done(self, call: _Call, task: _Task, rules: RobotsRules) -> None:
        self._robots.put(task.origin, rules)
        for waiting in call.robots_waiting.pop(task.origin, []):
            self._route(call, waiting, continuing=waiting.started is not None)

    def _finish(self, call: _Call, task: _Task, verdict: Page | Failure) -> None:
        call.open_tasks -= 1
        if isinstance(verdict, Page):
            self.stats["fetched"] += 1
            call.out.append(fetched_row(task.row or {}, task.key, verdict, task.elapsed_ms))
        else:
            self.stats[f"reject.{verdict.reason}"] += 1
            call.out.append(Reject(STAGE, task.key, verdict.reason, verdict.detail))

    def _abandon(self, call: _Call) -> None:
        """The caller stopped early (or a step failed): let in-flight steps end, drop the rest."""
        while call.inflight > 0:
            done = call.done.get()
            call.inflight -= 1
            if done.host is not None:
                self._hosts.done(done.host)
            if done.archived is not None:
                self._archive.remember(*done.archived, normal=True)
        self._hosts.drain()

    # --- steps (worker threads) ----------------------------------------------------

    def _replay_step(self, task: _Task, where: ArchivedAt) -> _Done:
        cfg = self.config
        try:
            stored = read_response(where, cfg.max_bytes, self.store)
        except Exception as exc:  # a damaged or vanished WARC: fetch the URL instead
            log.warning("cannot replay %s from %s: %s", task.url, where.warc_file, exc)
            return _Done(task, replay_failed=True)
        if stored.url != task.url:  # task.url is the index key: two keys shared one hash
            log.warning("index points %s to a record of %s; fetching it", task.url, stored.url)
            return _Done(task, replay_failed=True)
        task.elapsed_ms += stored.elapsed_ms
        return _Done(task, verdict=self._verdict(task, stored), replayed=True)

    def _live_step(self, task: _Task, host: str) -> _Done:
        cfg = self.config
        assert task.started is not None
        robots = task.kind == "robots"
        limit = cfg.robots_max_bytes if robots else cfg.max_bytes

        def body_limit(status: int, headers: Mapping[str, str]) -> int:
            return limit if robots else wanted_body_bytes(status, dict(headers), limit)

        try:
            capture = exchange(self._session, self._watchdog, cfg, task.url,
                               task.started + cfg.deadline, body_limit, task.jar)
        except TransportError as exc:
            failure = Failure(exc.reason, exc.detail)
            if exc.retryable and task.attempt < cfg.retries:
                return _Done(task, host=host, retry=failure, live=True)
            return _Done(task, host=host, verdict=failure, live=True)
        task.jar = capture.cookies  # cookies live for one redirect chain
        http_headers = http_response_headers(capture)
        stored = StoredResponse(
            url=capture.url, status=capture.status, headers=replayed_headers(http_headers),
            body=capture.body, truncated=capture.truncated, fetched_at=capture.date,
            elapsed_ms=capture.elapsed_ms,
        )
        archived = None
        if self._sink is not None:
            written = self._sink.write(capture, http_headers, index=indexable(capture.status))
            stored.warc_file, stored.warc_offset = written.warc_file, written.offset
            stored.warc_length = written.length
            if indexable(capture.status):
                archived = (capture.url, ArchivedAt(
                    self._sink.archive_dir, written.warc_file, written.offset,
                    written.length, capture.status, capture.date, self._sink.staging))
        if not indexable(capture.status) and task.attempt < cfg.retries:
            wait = retry_after_seconds(stored.headers)
            if wait is None or wait <= cfg.retry_after_max:
                return _Done(task, host=host, retry=Failure(f"http_{capture.status}", task.url),
                             retry_after=wait, archived=archived, live=True)
        task.elapsed_ms += capture.elapsed_ms
        return _Done(task, host=host, verdict=self._verdict(task, stored), archived=archived,
                     live=True)

    def _verdict(
        self, task: _Task, stored: StoredResponse
    ) -> Redirect | Page | Failure | RobotsRules:
        if task.kind == "robots":
            return robots_verdict(stored, self._product, self.config.robots_max_bytes)
        return interpret(stored, self.config.max_decoded_bytes)


def fetched_row(row: Mapping[str, Any], url: str, page: Page, elapsed_ms: int) -> FetchedRow:
    """The FETCHED_SCHEMA row: the link columns passed through, then the page's.

    Rows that carry only `url` get neutral link columns (id from the URL)."""
    return {
        "id": str(row.get("id") or stable_id(url)),
        "url": url,
        "domain": str(row.get("domain") or host_of(page.final_url)),
        "score": int(row.get("score") or 0),
        "n_posts": int(row.get("n_posts") or 0),
        "subreddits": list(row.get("subreddits") or []),
        "created_utc": int(row.get("created_utc") or 0),
        "title": str(row.get("title") or ""),
        "final_url": page.final_url,
        "http_status": page.http_status,
        "content_type": page.content_type,
        "charset": page.charset,
        "charset_source": page.charset_source,
        "fetched_at": page.fetched_at,
        "elapsed_ms": int(elapsed_ms),
        "n_bytes": page.n_bytes,
        "html": page.html,
        "warc_file": page.warc_file,
        "warc_offset": page.warc_offset,
        "warc_length": page.warc_length,
    }
