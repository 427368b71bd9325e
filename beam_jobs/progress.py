"""Live progress on local runners: stage, rows done, rate — printed from inside the DoFns.

Beam's metrics are only final once a pipeline ends, so the DoFns tick a
process-local meter that prints at most every few seconds to stderr (a
rewritten line on a terminal, plain lines in logs). On remote runners the
lines go to the worker logs, where they do no harm; `WEBTEXT_PROGRESS=0`
silences them.
"""

from __future__ import annotations

import os
import sys
import threading
import time

INTERVAL_S = 2.0


class _Meter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.last_print = 0.0

    def tick(self, stage: str, n: int = 1) -> None:
        now = time.monotonic()
        with self.lock:
            first = stage not in self.started
            self.started.setdefault(stage, now)
            self.counts[stage] = self.counts.get(stage, 0) + n
            if first or now - self.last_print < INTERVAL_S:
                return
            self.last_print = now
            done = self.counts[stage]
            rate = done / max(now - self.started[stage], 1e-6)
        _print(f"  {stage}: {done:,} rows ({rate:,.0f}/s)")


def _print(line: str) -> None:
    if os.environ.get("WEBTEXT_PROGRESS", "1") == "0":
        return
    stream = sys.stderr
    if stream.isatty():
        stream.write("\r\033[K" + line)
    else:
        stream.write(line + "\n")
    stream.flush()


def end_line() -> None:
    """Finish a rewritten progress line before normal output continues."""
    if sys.stderr.isatty() and os.environ.get("WEBTEXT_PROGRESS", "1") != "0":
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


METER = _Meter()


def tick(stage: str, n: int = 1) -> None:
    METER.tick(stage, n)
