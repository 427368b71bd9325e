"""Per-host politeness: a queue per host and a heap of when each host may start next.

The scheduler asks `pop_ready(now)` for any piece of work whose host has a
free slot (fewer than `per_host` requests in flight) and whose delay since its
last request start has passed. Hosts are ordered by that time, so a hot host
with thousands of queued URLs gets one start per delay while every other host
proceeds at the same time: nobody sleeps, and no worker thread is held by a
host that must wait. A 429's Retry-After pauses its host (`pause`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Host(Generic[T]):
    delay: float
    queue: deque[T] = field(default_factory=deque)
    active: int = 0
    next_start: float = 0.0
    token: int = -1  # seq of this host's one valid heap entry, -1 when not in the heap


class HostQueues(Generic[T]):
    """Work queued per host, released no faster than the politeness rules allow."""

    def __init__(self, per_host: int, delay: float) -> None:
        self.per_host = per_host
        self.default_delay = delay
        self._hosts: dict[str, _Host[T]] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._queued = 0

    def __len__(self) -> int:
        """Work items waiting (not in flight)."""
        return self._queued

    def _host(self, name: str) -> _Host[T]:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(self.default_delay)
        return host

    def _schedule(self, name: str, host: _Host[T]) -> None:
        if host.queue and host.active < self.per_host:
            host.token = next(self._seq)
            heapq.heappush(self._heap, (host.next_start, host.token, name))
        else:
            host.token = -1

    def push(self, name: str, item: T, front: bool = False) -> None:
        """Queue `item` for host `name`; `front` for work already under way (a redirect
        hop, a retry) so it finishes before new URLs of the same host start."""
        host = self._host(name)
        if front:
            host.queue.appendleft(item)
        else:
            host.queue.append(item)
        self._queued += 1
        if host.token < 0:
            self._schedule(name, host)

    def pop_ready(self, now: float) -> tuple[str, T] | None:
        """The next item whose host may start a request now; marks the host busy."""
        while self._heap and self._heap[0][0] <= now:
            _, token, name = heapq.heappop(self._heap)
            host = self._hosts.get(name)
            if host is None or token != host.token:
                continue  # stale entry
            if host.next_start > now:  # paused after the entry was made
                self._schedule(name, host)
                continue
            item = host.queue.popleft()
            self._queued -= 1
            host.active += 1
            host.next_start = now + host.delay
            self._schedule(name, host)
            return name, item
        return None

    def next_time(self) -> float | None:
        """When the earliest waiting host may start (None: nothing can start until a
        request finishes). May be in the past when work is ready now."""
        while self._heap:
            _, token, name = self._heap[0]
            host = self._hosts.get(name)
            if host is not None and token == host.token:
                return self._heap[0][0]
            heapq.heappop(self._heap)
        return None

    def done(self, name: str) -> None:
        """A request to host `name` finished (whatever its outcome)."""
        host = self._hosts.get(name)
        if host is None:
            return
        host.active -= 1
        if host.token < 0:
            self._schedule(name, host)

    def set_delay(self, name: str, delay: float) -> None:
        """Raise (never lower below the default) the delay between starts for a host."""
        self._host(name).delay = max(self.default_delay, delay)

    def pause(self, name: str, until: float) -> None:
        """No new request to `name` before `until` (a 429 with Retry-After)."""
        host = self._host(name)
        if until > host.next_start:
            host.next_start = until
            if host.token >= 0:
                self._schedule(name, host)

    def drain(self) -> list[T]:
        """Remove and return every queued item (in-flight counts stay as they are)."""
        items: list[T] = []
        for host in self._hosts.values():
            items.extend(host.queue)
            host.queue.clear()
            host.token = -1
        self._heap.clear()
        self._queued = 0
        return items

    @property
    def n_hosts(self) -> int:
        return len(self._hosts)

    def forget_idle(self, now: float) -> None:
        """Drop idle hosts whose politeness window has passed, so memory stays bounded by
        the hosts with work (a Crawl-delay is re-applied from the robots cache)."""
        idle = [n for n, h in self._hosts.items()
                if not h.queue and h.active == 0 and h.next_start <= now]
        for name in idle:
            del self._hosts[name]
