"""Fetch stage benchmark: pages/s against a local server with injected latency, by concurrency.

    python benchmarks/bench_fetch.py                          # 1, 8, 32, 64 in flight
    python benchmarks/bench_fetch.py --concurrency 64 128 --seconds 10
    python benchmarks/bench_fetch.py --robots --no-warc

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


def child(args: argparse.Namespace) -> None:
    """Fetch `--pages` pages over the first `--hosts` addresses; print one JSON line."""
    from webtext_pipeline.fetch import FetchConfig, Fetcher
    from webtext_pipeline.records import Reject

    addresses = json.loads(args.addresses)[: args.hosts]
    urls = [f"http://{addresses[i % len(addresses)]}:{args.port}/page/{i}"
            for i in range(args.pages)]
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
    fetcher.close()
    print(json.dumps({"fetched": fetched, "rejected": rejected, "reasons": reasons,
                      "wall": wall, "cpu": cpu, "requests": fetcher.stats["requests"]}),
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
    # child mode
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--addresses", help=argparse.SUPPRESS)
    parser.add_argument("--pages", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warc-dir", default=None, help=argparse.SUPPRESS)
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
                measured = run_measured(argv, env={**os.environ, "PYTHONHASHSEED": "0"}).check()
                warc_bytes = sum(p.stat().st_size for p in Path(warc_dir).glob("*.warc.gz"))
            result = json.loads(measured.stdout.strip().splitlines()[-1])
            assert result["fetched"] + result["rejected"] == pages
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
