"""Small helpers every benchmark script shares: timing, child-process memory, tables.

Nothing here knows about a stage. A benchmark times a callable a few times and
quotes the median (`time_repeats`), runs a command in a child process while
sampling the resident memory of its whole process tree (`run_measured`), and
prints Markdown tables that paste straight into docs/benchmarks.md
(`print_table`).

Memory is read with psutil when it is installed, else from /proc (Linux).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

try:  # optional: the /proc fallback below does the same on Linux
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

MIB = 1 << 20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# --- timing -----------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Timing:
    """Wall and CPU seconds (this process: user + system) of one call."""

    wall_s: float
    cpu_s: float


def time_once(fn: Callable[[], object]) -> tuple[Timing, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), result


def time_repeats(fn: Callable[[], object], repeats: int) -> tuple[list[Timing], object]:
    """Run `fn` `repeats` times in a row; the timing of each run and the last result."""
    timings, result = [], None
    for _ in range(repeats):
        timing, result = time_once(fn)
        timings.append(timing)
    return timings, result


def round_robin(
    cases: Sequence[tuple[str, Callable[[], object]]], repeats: int, log: bool = True
) -> dict[str, tuple[list[Timing], object]]:
    """Time every case once per round, `repeats` rounds: a slow spell on a shared
    machine then hits every case alike instead of all the repeats of one."""
    out: dict[str, tuple[list[Timing], object]] = {name: ([], None) for name, _ in cases}
    for round_no in range(repeats):
        for name, fn in cases:
            timing, result = time_once(fn)
            out[name] = (out[name][0] + [timing], result)
            if log:
                print(
                    f"  round {round_no + 1}: {name}: {timing.wall_s:.2f} s wall, "
                    f"{timing.cpu_s:.2f} s CPU",
                    flush=True,
                )
    return out


def load_average() -> str:
    """The 1-minute load average and the core count: '1.9 / 2 cores' (others' work shows)."""
    try:
        return f"{os.getloadavg()[0]:.1f} / {os.cpu_count()} cores"
    except OSError:
        return "?"


# --- memory -------------------------------------------------------------------


def max_rss_self() -> int:
    """Peak resident set size of this process so far, in bytes.

    Linux's VmHWM belongs to the address space, so it starts afresh at exec;
    getrusage's ru_maxrss does not (a child inherits its parent's figure), so
    it is only the fallback.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _proc_children(pid: int) -> list[int]:
    """All descendants of `pid`, read from /proc (fallback when psutil is absent)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _proc_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of `pid`, RSS summed over `pid` and all its descendants), in bytes."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0, 0
        sizes = []
        for proc in procs:
            try:
                sizes.append(proc.memory_info().rss)
            except psutil.Error:
                sizes.append(0)
        return sizes[0], sum(sizes)
    own = _proc_rss(pid)
    return own, own + sum(_proc_rss(child) for child in _proc_children(pid))


@dataclass
class Measured:
    """What `run_measured` saw of one child process (and everything it started)."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float  # user + system of the child and every descendant it waited for
    peak_tree_rss: int  # max over samples of the summed RSS of the process tree
    peak_main_rss: int  # max over samples of the child's own RSS
    max_processes: int
    stdout: str = ""
    stderr: str = ""
    samples: int = 0
    extra: dict = field(default_factory=dict)

    def check(self) -> Measured:
        if self.returncode != 0:
            tail = (self.stderr or self.stdout)[-2000:]
            raise RuntimeError(f"{' '.join(self.argv)} exited {self.returncode}:\n{tail}")
        return self


def run_measured(
    argv: Sequence[str],
    interval_s: float = 0.05,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Measured:
    """Run `argv`, sampling the process tree's RSS every `interval_s`; wait for it to end.

    The tree figure sums RSS over processes, so pages that forked processes
    share are counted once per process (an upper bound). CPU seconds come from
    RUSAGE_CHILDREN, which covers every descendant its parent waited for.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True
    )
    peak = {"tree": 0, "main": 0, "procs": 0, "samples": 0}

    def sample() -> None:
        while proc.poll() is None:
            main, total = tree_rss(proc.pid)
            peak["tree"] = max(peak["tree"], total)
            peak["main"] = max(peak["main"], main)
            if psutil is not None:
                try:
                    count = 1 + len(psutil.Process(proc.pid).children(recursive=True))
                except psutil.Error:
                    count = 0
            else:
                count = 1 + len(_proc_children(proc.pid))
            peak["procs"] = max(peak["procs"], count)
            peak["samples"] += 1
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(
        argv=list(argv),
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=cpu,
        peak_tree_rss=peak["tree"],
        peak_main_rss=peak["main"],
        max_processes=peak["procs"],
        stdout=stdout,
        stderr=stderr,
        samples=peak["samples"],
    )


# --- printing -----------------------------------------------------------------


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_rate(per_second: float) -> str:
    """Records per second, in thousands: '231.4k'."""
    return f"{per_second / 1000:,.1f}k"


def fmt_mib(size: float) -> str:
    return f"{size / MIB:,.0f} MiB"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table with a bold title line; numbers right-aligned, text left-aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        all(_looks_numeric(row[i]) for row in cells[1:]) and len(cells) > 1
        for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1)) + ":" if num else "-" * (w + 2)
            for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    print(f"\n**{title}**\n", flush=True)
    print(line(cells[0]))
    print(rule)
    for row in cells[1:]:
        print(line(row))
    print(flush=True)


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("×", "").replace("k", "").replace("MiB", "")
    stripped = stripped.replace("s", "").replace("%", "").strip()
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def machine_line() -> str:
    """One line naming the machine: CPUs, memory, Python, for the top of every report."""
    cores = os.cpu_count() or 0
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            total_kib = int(handle.readline().split()[1])
        memory = f"{total_kib / (1 << 20):.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "? GiB"
    return (
        f"{cores} cores, {memory} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, "
        f"memory sampled with {'psutil' if psutil is not None else '/proc'}"
    )
