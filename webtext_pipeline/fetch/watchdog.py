"""The per-URL deadline, enforced on the socket: a thread that shuts late exchanges down.

Timeouts bound each wait for bytes, not the whole exchange: a server can
drip its headers or body a byte at a time forever without tripping a read
timeout. Each exchange arms a slot with its deadline; the guarded
connections (connection.py) record in the slot the socket they use; every
`interval` seconds the watchdog shuts down the socket of any slot past its
deadline, which ends the blocked read at once with an error the exchange
reports as `timeout`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Slot:
    """The socket an exchange currently uses, and when it must be cut."""

    __slots__ = ("deadline", "sock", "fired")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.fired = False


_current = threading.local()  # .slot: the Slot of this thread's exchange, if any


def current_slot() -> Slot | None:
    return getattr(_current, "slot", None)


def register(sock: socket.socket) -> None:
    """Called by a connection with the socket it is about to use for this thread's exchange."""
    slot = current_slot()
    if slot is not None:
        slot.sock = sock


class Watchdog:
    """Shuts down the socket of any exchange past its deadline (checked every `interval` s)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self._slots: set[Slot] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float) -> Slot:
        slot = Slot(deadline)
        with self._lock:
            self._slots.add(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog",
                                                daemon=True)
                self._thread.start()
        _current.slot = slot
        return slot

    def disarm(self, slot: Slot) -> None:
        _current.slot = None
        with self._lock:
            self._slots.discard(slot)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            with self._lock:
                late = [s for s in self._slots if s.deadline <= now and not s.fired]
            for slot in late:
                slot.fired = True
                sock = slot.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stop.set()
