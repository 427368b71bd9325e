"""Fetch stage benchmark: pages/s against a local server with injected latency, by concurrency.

    python benchmarks/bench_fetch.py                          # 1, 8, 32, 64 in flight
    python benchmarks/bench_fetch.py --concurrency 64 128 --seconds 10
    python benchmarks/bench_fetch.py --robots --no-warc
    python benchmarks/bench_fetch.py --memory-sweep 2000 8000 32000   # memory vs URLs, 64 in flight

What it measures, all in one run so the bound sits beside each figure:

- The server (`tests/webserver.py`, its own process) listens on `--hosts`
  distinct loopback addresses (127.0.x.y: all of 127/8 is loopback on
  Linux), so the fetcher sees that many hosts, and answers every request after
  `--latency` seconds with a `--page-bytes` HTML page.
- For each concurrency, a fresh child process fetches enough pages for about
  `--seconds` seconds (URLs round-robin over the hosts) with one Fetcher — the
  whole library path: politeness scheduler, guarded requests pool, body
  limits, charset decoding, and (unless --no-warc) WARC + index writing.
  Its peak RSS is sampled from outside; its wall time is from the first
  request to the last output (imports and the archive scan excluded).
- The bound is pages / the shortest possible run, which is the longer of
  ceil(pages / concurrency) x latency (requests in flight) and, per host,
  (pages per host - 1) x max(per-host delay, latency / per-host concurrency)
  + latency (politeness). In steady state that is min(concurrency / latency,
  hosts / delay). A last row with few hosts shows the politeness bound binding.

`--memory-sweep N1 N2 ...` runs instead one fresh child per page count at a
fixed concurrency (`--sweep-concurrency`, 64) over all `--hosts`, and prints
peak RSS against the number of URLs: the anchor is the smallest run, and
"per extra 1,000 URLs" is (peak - anchor's peak) / (extra URLs / 1,000). The
child also reports, just before it closes the Fetcher, the deep size of the
two structures that hold one entry per fetched URL: the archive index (URL ->
WARC location, kept for the worker's life so a rerun replays) and the index
rows of the WARC file still open (freed when the file is finished: rotation
or `Fetcher.flush()`, once per Beam bundle). URLs are generated lazily, so
the benchmark itself holds no per-URL list.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from _common import (  # noqa: E402
    fmt_mib,
    load_average,
    machine_line,
    max_rss_self,
    print_table,
    run_measured,
)


def ideal_seconds(pages: int, concurrency: int, hosts: int, latency: float, per_host: int,
                  delay: float) -> tuple[float, str]:
    """The shortest possible run and what binds it: `concurrency` requests in flight, each
    `latency` long; or politeness: a host's k pages need (k - 1) spacings + one latency."""
    in_flight = math.ceil(pages / concurrency) * latency
    spacing = max(delay, latency / per_host)
    polite = (math.ceil(pages / hosts) - 1) * spacing + latency
    return (in_flight, "concurrency") if in_flight >= polite else (polite, "politeness")


def deep_size(root: object) -> int:
    """Bytes held by `root` and everything it references (each object counted once)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif not isinstance(obj, (str, bytes, int, float, bool, type(None))):
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    stack.append(getattr(obj, name))
    return total


def child(args: argparse.Namespace) -> None:
    """Fetch `--pages` pages over the first `--hosts` addresses; print one JSON line."""
    from webtext_pipeline.fetch import FetchConfig, Fetcher
    from webtext_pipeline.records import Reject

    addresses = json.loads(args.addresses)[: args.hosts]
    urls = (f"http://{addresses[i % len(addresses)]}:{args.port}/page/{i}"
            for i in range(args.pages))  # lazy: no per-URL list in the benchmark itself
    config = FetchConfig(
        concurrency=args.child_concurrency, per_host_concurrency=args.per_host,
        per_host_delay=args.delay, allow_private_addresses=True,
        respect_robots=args.robots, warc_dir=args.warc_dir, retries=0,
    )
    fetcher = Fetcher(config).open()  # sessions, threads, archive index: before the clock
    started, cpu = time.perf_counter(), time.process_time()
    fetched = rejected = 0
    reasons: dict[str, int] = {}
    for out in fetcher.fetch_many({"url": u} for u in urls):
        if isinstance(out, Reject):
            rejected += 1
            reasons[out.reason] = reasons.get(out.reason, 0) + 1
        else:
            fetched += 1
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    sizes = {}
    if args.sizes:  # before close(): close() finishes the open WARC file and frees its rows
        archive = getattr(fetcher, "_archive", None)
        sink = getattr(fetcher, "_sink", None)
        open_file = getattr(sink, "_file", None) if sink is not None else None
        sizes = {
            "archive_entries": len(archive) if archive is not None else 0,
            "archive_bytes": (archive.memory_bytes() if archive is not None else 0)
            + deep_size(getattr(archive, "_recent", {})),
            "warc_rows": len(open_file.rows) if open_file is not None else 0,
            "warc_rows_bytes": deep_size(open_file.rows) if open_file is not None else 0,
            "hwm_fetching": max_rss_self(),  # peak while fetching (before close)
        }
    fetcher.close()
    if args.sizes:
        sizes["hwm"] = max_rss_self()  # peak overall: close() writes the open file's Parquet index
    print(json.dumps({"fetched": fetched, "rejected": rejected, "reasons": reasons,
                      "wall": wall, "cpu": cpu, "requests": fetcher.stats["requests"],
                      **sizes}),
          flush=True)


def start_server(hosts: int, latency: float, page_bytes: int) -> tuple[subprocess.Popen, dict]:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "webserver.py"), "--hosts", str(hosts),
         "--latency", str(latency), "--page-bytes", str(page_bytes)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert server.stdout is not None
    info = json.loads(server.stdout.readline())
    return server, info


def run_child(args: argparse.Namespace, info: dict, pages: int, concurrency: int, hosts: int,
              sizes: bool = False) -> tuple[dict, object, int]:
    """One fresh fetcher child: (its JSON result, its Measured, WARC bytes written)."""
    with tempfile.TemporaryDirectory(prefix="bench-fetch-") as warc_dir:
        argv = [sys.executable, str(Path(__file__).resolve()), "--child",
                "--port", str(info["port"]), "--addresses", json.dumps(info["addresses"]),
                "--pages", str(pages), "--child-concurrency", str(concurrency),
                "--hosts", str(hosts), "--per-host", str(args.per_host),
                "--delay", str(args.delay)]
        if args.robots:
            argv.append("--robots")
        if not args.no_warc:
            argv += ["--warc-dir", warc_dir]
        if sizes:
            argv.append("--sizes")
        measured = run_measured(argv, env={**os.environ, "PYTHONHASHSEED": "0"}).check()
        warc_bytes = sum(p.stat().st_size for p in Path(warc_dir).rglob("*.warc.gz"))
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    assert result["fetched"] + result["rejected"] == pages
    return result, measured, warc_bytes


def memory_sweep(args: argparse.Namespace, info: dict) -> None:
    """Peak RSS of the fetcher child against the number of URLs, at fixed concurrency."""
    concurrency, hosts = args.sweep_concurrency, args.hosts
    rows = []
    anchor: tuple[int, int, int] | None = None  # (pages, peak fetching, peak incl. close)
    previous: tuple[int, int] | None = None  # (pages, peak fetching)

    def per_k(extra_bytes: int, extra_pages: int) -> str:
        return f"{extra_bytes / 1024 / (extra_pages / 1000):,.0f} KiB"

    for pages in sorted(args.memory_sweep):
        best, _ = ideal_seconds(pages, concurrency, hosts, args.latency, args.per_host,
                                args.delay)
        result, measured, warc_bytes = run_child(args, info, pages, concurrency, hosts,
                                                 sizes=True)
        rate = result["fetched"] / result["wall"]
        fetching = result.get("hwm_fetching", 0)
        overall = max(measured.peak_main_rss, result.get("hwm", 0))  # VmHWM, and sampled
        if anchor is None:
            anchor = (pages, fetching, overall)
            vs_anchor = vs_anchor_close = vs_previous = "(anchor)"
        else:
            assert previous is not None
            vs_anchor = per_k(fetching - anchor[1], pages - anchor[0])
            vs_anchor_close = per_k(overall - anchor[2], pages - anchor[0])
            vs_previous = per_k(fetching - previous[1], pages - previous[0])
        previous = (pages, fetching)
        entries = result.get("archive_entries", 0)
        rows.append([
            f"{pages:,}", f"{result['rejected']}", f"{result['wall']:.2f}", f"{rate:,.1f}",
            f"{100 * rate / (pages / best):.0f}%",
            fmt_mib(fetching), vs_anchor, vs_previous, fmt_mib(overall), vs_anchor_close,
            f"{entries:,}", f"{result.get('archive_bytes', 0) / 2**20:.1f} MiB",
            f"{result.get('archive_bytes', 0) / entries:,.0f}" if entries else "-",
            f"{result.get('warc_rows', 0):,}",
            f"{result.get('warc_rows_bytes', 0) / 2**20:.1f} MiB",
            f"{warc_bytes / 2**20:.1f} MiB",
        ])
        print(f"  {pages:,} pages: {rate:,.1f} pages/s, peak RSS {fmt_mib(fetching)} fetching, "
              f"{fmt_mib(overall)} incl. close; archive index {entries:,} entries; "
              f"rejects {result['reasons']}", flush=True)
    print_table(
        f"Fetcher memory vs number of URLs, {concurrency} in flight, one worker process, "
        f"{hosts} hosts, {args.latency * 1000:.0f} ms server latency",
        ["pages", "rejects", "wall s", "pages/s", "of bound", "peak RSS fetching",
         "per extra 1,000 URLs", "per 1,000 vs previous row", "peak RSS incl. close",
         "per extra 1,000 URLs (incl. close)", "archive index entries", "archive index size",
         "B/entry", "open WARC index rows", "their size", "WARC"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--delay", type=float, default=1.0, help="per-host delay, seconds")
    parser.add_argument("--page-bytes", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="target length of each run")
    parser.add_argument("--politeness-hosts", type=int, default=16,
                        help="hosts in the extra row where politeness binds (0: no row)")
    parser.add_argument("--robots", action="store_true", help="fetch robots.txt (one per host)")
    parser.add_argument("--no-warc", action="store_true", help="do not write WARC files")
    parser.add_argument("--memory-sweep", type=int, nargs="+", metavar="PAGES",
                        help="instead: peak RSS vs number of URLs at --sweep-concurrency")
    parser.add_argument("--sweep-concurrency", type=int, default=64)
    # child mode
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warc-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(machine_line())
    print(f"load before: {load_average()}")
    print(f"server: {args.hosts} loopback hosts, {args.latency * 1000:.0f} ms latency, "
          f"{args.page_bytes:,} B pages; per host: {args.per_host} in flight, "
          f"{args.delay:g} s between starts; robots {'on' if args.robots else 'off'}; "
          f"WARC {'off' if args.no_warc else 'on'}", flush=True)
    server, info = start_server(args.hosts, args.latency, args.page_bytes)
    if args.memory_sweep:
        try:
            memory_sweep(args, info)
        finally:
            server.terminate()
            server.wait(timeout=10)
        print(f"load after: {load_average()}")
        return
    runs = [(c, args.hosts) for c in args.concurrency]
    if args.politeness_hosts:
        runs.append((max(args.concurrency), args.politeness_hosts))
    rows = []
    try:
        for concurrency, hosts in runs:
            if hosts / max(args.delay, 1e-9) >= concurrency / args.latency:
                pages = concurrency * max(2, round(args.seconds / args.latency))
            else:  # politeness binds: enough pages per host for about --seconds
                pages = hosts * max(2, round(args.seconds / max(args.delay, 1e-9)) + 1)
            best, binding = ideal_seconds(pages, concurrency, hosts, args.latency,
                                          args.per_host, args.delay)
            ideal = pages / best
            result, measured, warc_bytes = run_child(args, info, pages, concurrency, hosts)
            rate = result["fetched"] / result["wall"]
            rows.append([
                concurrency, hosts, f"{result['fetched']:,}", f"{result['rejected']}",
                f"{result['wall']:.2f}", f"{rate:,.1f}", f"{ideal:,.1f}", binding,
                f"{100 * rate / ideal:.0f}%",
                f"{1000 * result['cpu'] / max(1, result['fetched']):.2f}",
                fmt_mib(measured.peak_main_rss), f"{warc_bytes / 2**20:.1f} MiB",
            ])
            print(f"  {concurrency} in flight, {hosts} hosts: {rate:,.1f} pages/s "
                  f"({100 * rate / ideal:.0f}% of {ideal:,.1f}), rejects {result['reasons']}",
                  flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print_table(
        f"Fetch throughput, one worker process, {args.latency * 1000:.0f} ms server latency",
        ["in flight", "hosts", "pages", "rejects", "wall s", "pages/s", "bound pages/s",
         "bound by", "of bound", "CPU ms/page", "peak RSS", "WARC"],
        rows,
    )
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()
