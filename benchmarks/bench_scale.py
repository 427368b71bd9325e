"""Scale benchmark: a synthetic build of N submissions and N/10 pages, stage by stage, on 1 and
2 DirectRunner workers, then at twice the size: is time linear and memory flat?

    python benchmarks/bench_scale.py                    # --scale 1: 1M submissions, 100k pages
    python benchmarks/bench_scale.py --scale 0.05       # 50k submissions, 5k pages (≈10 min)
    python benchmarks/bench_scale.py --scale 0.05 --workers 1 2 --sizes 1 2

Input (generated once into --workdir, cached by size): four monthly dumps
RS_2017-0{3..6}.zst holding N submissions, of which N/10 link (score >= 3) to
distinct article pages on 200 hosts and the rest are low-score posts (the
links stage's commonest reject, as in the real dumps); and a WARC of those
N/10 pages (the sample web's page template: navigation, comments, footer
around 5-11 paragraphs of generated English; 5 % exact copies of another page,
so dedup has work). The build fetches them offline from the WARC
(`--warc-cache DIR --offline`): no network, same bytes every run.

Each configuration is one `webtext build --until shards` process in a fresh
folder; a stage's wall time runs from its "build: STAGE …" line to its "done
in" line, and the process tree's RSS is sampled every 50 ms and charged to the
stage running then: "peak/worker" is the largest single process (the
in_memory runner, one multi_processing worker, or one extraction child),
"peak tree" sums the tree. The split table separates the build process (the
driver, and on the DirectRunner the runner that holds every PCollection and
shuffle: Dataflow's shuffle service) from its largest child (with
multi_processing, an SDK worker; it holds much of its whole-stage bundle, so it
grows with the input: repro_beam_worker_memory.py, and bench_worker_memory.py
for what a worker holds in bounded bundles). Per-stage
figures are printed as Markdown tables ready for docs/scaling.md.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import zstandard
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_mib, load_average, machine_line, print_table  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

from webtext_pipeline.links.sample import SUBREDDITS, WORDS, SampleArticle  # noqa: E402
from webtext_pipeline.sample_web import (  # noqa: E402
    WARC_DATE,
    _page_html,
    _sentence,
    article_paragraphs,
)

STAGES = ("links", "fetch", "extract", "dedup", "shards")
MONTHS = ("2017-03", "2017-04", "2017-05", "2017-06")
HOSTS = 200
PAGES_PER_WARC = 10_000
FULL_SUBMISSIONS = 1_000_000
GENERATOR_VERSION = 1


# --- the synthetic input ------------------------------------------------------------------


def _host(index: int) -> str:
    return f"site{index % HOSTS:03d}-news.com"


def page_url(index: int) -> str:
    return f"https://{_host(index)}/2017/story-{index:07d}"


def _post(rng: random.Random, index: int, month_start: int, url: str, score: int) -> str:
    post_id = f"s{index:08x}"
    created = month_start + rng.randrange(27 * 86400)
    record = {
        "id": post_id, "name": f"t3_{post_id}", "author": f"user{rng.randrange(50_000)}",
        "subreddit": rng.choice(SUBREDDITS), "created_utc": created,
        "retrieved_on": created + 86400 * 30, "score": score,
        "num_comments": rng.randrange(200),
        "title": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 12))).capitalize(),
        "url": url, "domain": url.split("/")[2], "is_self": False, "over_18": False,
        "selftext": "", "permalink": f"/r/x/comments/{post_id}/", "stickied": False,
    }
    return json.dumps(record, separators=(",", ":"))


def write_dumps(directory: Path, submissions: int, pages: int, seed: int = 1) -> int:
    """Four months of submissions; every page URL posted once with score >= 3."""
    import calendar

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    per_month = -(-submissions // len(MONTHS))
    good = set(random.Random(seed + 1).sample(range(submissions), pages))
    page_of = {index: n for n, index in enumerate(sorted(good))}
    total = 0
    for m, month in enumerate(MONTHS):
        year, mon = (int(p) for p in month.split("-"))
        start = calendar.timegm((year, mon, 1, 0, 0, 0))
        lines = []
        for index in range(m * per_month, min(submissions, (m + 1) * per_month)):
            if index in page_of:
                lines.append(_post(rng, index, start, page_url(page_of[index]),
                                   3 + int(rng.paretovariate(1.2))))
            else:  # a low-score post: rejected by the links stage
                url = f"https://{_host(rng.randrange(10**6))}/misc/{index}"
                lines.append(_post(rng, index, start, url, rng.randrange(3)))
        data = ("\n".join(lines) + "\n").encode()
        (directory / f"RS_{month}.zst").write_bytes(
            zstandard.ZstdCompressor(level=3).compress(data))
        total += len(lines)
    return total


def _record(writer: WARCWriter, url: str, body: bytes) -> None:
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]
    record = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body),
        http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"),
        warc_headers_dict={"WARC-Date": WARC_DATE},
    )
    record.rec_headers.replace_header("WARC-Record-ID", f"<urn:webtext:bench:{url}>")
    writer.write_record(record)


def write_warcs(directory: Path, pages: int, seed: int = 1) -> int:
    """The pages as gzipped WARC files of PAGES_PER_WARC responses; returns the bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for first in range(0, pages, PAGES_PER_WARC):
        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=True)
        for index in range(first, min(pages, first + PAGES_PER_WARC)):
            url = page_url(index)
            rng = random.Random(f"{seed}-{index}")
            source = url if index % 20 else page_url((index * 7 + 3) % pages)  # 5 % copies
            paragraphs = article_paragraphs(source, 5 + rng.randrange(7))
            article = SampleArticle(url.split("/")[2], url.split("/", 3)[3])
            headline = _sentence(rng).rstrip(".")[:90]
            _record(writer, url, _page_html(article, headline, paragraphs, "en", rng).encode())
        data = buffer.getvalue()
        (directory / f"bench-{first // PAGES_PER_WARC:04d}.warc.gz").write_bytes(data)
        total += len(data)
    return total


def synthetic_input(workdir: Path, submissions: int) -> tuple[Path, Path, dict]:
    """(dumps dir, warc dir, facts), generated once per size."""
    pages = submissions // 10
    root = workdir / f"input-{submissions}-v{GENERATOR_VERSION}"
    facts_file = root / "facts.json"
    if facts_file.exists():
        return root / "dumps", root / "warc", json.loads(facts_file.read_text())
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    write_dumps(root / "dumps", submissions, pages)
    warc_bytes = write_warcs(root / "warc", pages)
    dump_bytes = sum(p.stat().st_size for p in (root / "dumps").iterdir())
    facts = {"submissions": submissions, "pages": pages, "dump_bytes": dump_bytes,
             "warc_bytes": warc_bytes, "generated_s": round(time.perf_counter() - started, 1)}
    facts_file.write_text(json.dumps(facts))
    return root / "dumps", root / "warc", facts


# --- measuring ------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    if psutil is None:
        from _common import _proc_children

        return [pid, *_proc_children(pid)]
    try:
        return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def _rss(pid: int) -> int:
    if psutil is None:
        from _common import _proc_rss

        return _proc_rss(pid)
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def runner_flags(workers: int) -> list[str]:
    if workers == 1:
        return ["--runner", "DirectRunner"]
    return ["--runner", "DirectRunner", "--direct_running_mode=multi_processing",
            f"--direct_num_workers={workers}"]


def run_build(argv: list[str]) -> dict[str, dict]:
    """Run one `webtext build`; per stage (from its "build: STAGE …" / "done in" lines):
    wall seconds, peak single-process RSS, peak summed tree RSS."""
    import subprocess

    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
        stages: dict[str, dict] = {}
        current: list[str | None] = [None]

        def sample() -> None:
            while proc.poll() is None:
                stage = current[0]
                if stage is not None:
                    sizes = [_rss(pid) for pid in _tree(proc.pid)]
                    peak = stages[stage]
                    peak["one"] = max(peak["one"], max(sizes, default=0))
                    peak["runner"] = max(peak["runner"], sizes[0] if sizes else 0)
                    peak["child"] = max(peak["child"], max(sizes[1:], default=0))
                    peak["tree"] = max(peak["tree"], sum(sizes))
                    peak["procs"] = max(peak["procs"], len(sizes))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            words = line.split()
            if line.startswith("build: ") and len(words) >= 3 and words[1] in STAGES:
                stage = words[1]
                if words[2] == "…":
                    stages[stage] = {"one": 0, "tree": 0, "procs": 0, "runner": 0, "child": 0,
                                     "started": time.perf_counter()}
                    current[0] = stage
                elif words[2] in ("done", "reused"):
                    stages[stage]["wall"] = time.perf_counter() - stages[stage].pop("started")
                    print(f"    {stage}: {stages[stage]['wall']:.1f} s, peak/worker "
                          f"{fmt_mib(stages[stage]['one'])} (build process "
                          f"{fmt_mib(stages[stage]['runner'])}, largest child "
                          f"{fmt_mib(stages[stage]['child'])})", flush=True)
                    current[0] = None
        proc.wait()
        sampler.join()
        if proc.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed:\n{stderr.read()[-3000:]}")
        return stages


def one_build(dumps: Path, warc: Path, out: Path, workers: int) -> dict:
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "webtext_pipeline.cli", "build", "--dumps", str(dumps),
            "--warc-cache", str(warc), "--offline", "--out", str(out), "--until", "shards",
            *runner_flags(workers)]
    print(f"  {workers} worker(s): {out}", flush=True)
    stages = run_build(argv)

    def rows(folder: str) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in (out / folder).glob("*.parquet"))

    sizes = {name: sum(p.stat().st_size for p in (out / name).glob("*.parquet"))
             for name in ("links", "fetched", "clean", "dedup", "docs")}
    return {"stages": stages, "docs": rows("docs"), "fetched": rows("fetched"),
            "links": rows("links"), "bytes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of 1M submissions / 100k pages (default 1)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 2],
                        help="multiples of the scaled size (default 1 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-scale")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print(f"load average before: {load_average()}")
    results = []
    for size in args.sizes:
        submissions = int(FULL_SUBMISSIONS * args.scale * size)
        dumps, warc, facts = synthetic_input(args.workdir, submissions)
        print(f"input: {facts}", flush=True)
        for workers in args.workers:
            out = args.workdir / f"out-{submissions}-w{workers}"
            result = one_build(dumps, warc, out, workers)
            results.append({"size": size, "workers": workers, "facts": facts, **result})
            shutil.rmtree(out, ignore_errors=True)
    print(f"load average after: {load_average()}")
    rows = []
    for r in results:
        f = r["facts"]
        total = sum(s["wall"] for s in r["stages"].values())
        rows.append([f"{f['submissions']:,} / {f['pages']:,}", r["workers"],
                     *(f"{r['stages'][s]['wall']:.1f} s" for s in STAGES), f"{total:.1f} s",
                     f"{r['docs']:,}",
                     fmt_mib(max(s["one"] for s in r["stages"].values())),
                     fmt_mib(max(s["tree"] for s in r["stages"].values()))])
    print_table("Wall time per stage (one build process per row) and peak memory",
                ["submissions / pages", "workers", *STAGES, "total", "docs", "peak/worker",
                 "peak tree"], rows)
    mem_rows = [[f"{r['facts']['submissions']:,}", r["workers"],
                 *(fmt_mib(r["stages"][s]["one"]) for s in STAGES)] for r in results]
    print_table("Peak RSS of the largest single process, per stage",
                ["submissions", "workers", *STAGES], mem_rows)
    split_rows = [[f"{r['facts']['submissions']:,}", r["workers"],
                   *(f"{fmt_mib(r['stages'][s]['runner'])} / {fmt_mib(r['stages'][s]['child'])}"
                     for s in STAGES)] for r in results]
    print_table("Peak RSS per stage: build process (driver + the local runner's PCollections"
                " and shuffles) / largest child (a multi_processing SDK worker, or the"
                " extraction child)", ["submissions", "workers", *STAGES], split_rows)
    byte_rows = [[f"{r['facts']['pages']:,}",
                  f"{r['facts']['warc_bytes'] / r['facts']['pages']:,.0f}",
                  *(f"{r['bytes'][k] / max(1, r['facts']['pages']):,.0f}"
                    for k in ("fetched", "clean", "docs"))]
                 for r in results if r["workers"] == args.workers[0]]
    print_table("Bytes per page (WARC gz; zstd Parquet per input page)",
                ["pages", "WARC", "fetched", "clean", "docs"], byte_rows)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
