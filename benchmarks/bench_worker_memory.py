"""Per-worker memory of webtext's own steps at 1× and 2× input, in bounded bundles.

bench_scale.py cannot show flat per-worker memory: Beam's local runner hands
each SDK worker a whole stage's share as one bundle and the worker holds much
of it before processing (repro_beam_worker_memory.py shows that in pure
Beam). A Dataflow worker instead gets bounded bundles. This script runs the
stage DoFns the way such a worker calls them: `setup`, then for each bundle
`start_bundle`, `process` per element, `finish_bundle`, then `teardown`, in a
fresh process per (step, size), reading its input a bundle at a time and
discarding the outputs (a runner ships them on). It reports that process's
peak RSS, its extraction child included.

    python benchmarks/bench_worker_memory.py --scale 0.1          # 10k and 20k pages

Steps: links (`ReadAndFilter`: read, parse and filter one dump file per
element, before the dedup GroupByKey), fetch (`FetchBatches`, replaying the
pages from the synthetic WARC in batches of the stage's batch size),
extract+clean (`_ExtractClean`, with its isolated extraction child), dedup
features (`Features`: shingles, MinHash, the verification payload) and the
fetched-shard writer (`_WriteShard`, one shard of the stage's size per
element). The dedup joins and the link aggregation are GroupByKeys and
combiners: the shuffle (Dataflow's service) holds them, not a worker.
Input: bench_scale's synthetic build at each size
(`webtext build --until extract`, in_memory), made once under --workdir.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_mib, load_average, machine_line, print_table  # noqa: E402

STEPS = ("links", "fetch", "extract", "dedup-features", "write-shard")
BUNDLE_ROWS = 1_000


def _rows(folder: Path, batch_rows: int, columns: list[str] | None = None) -> Iterator[list[dict]]:
    """The folder's Parquet rows, `batch_rows` at a time (never a whole file in memory)."""
    import pyarrow.parquet as pq

    for path in sorted(folder.glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
            yield batch.to_pylist()


def _run_bundles(dofn, bundles: Iterator[list]) -> int:
    """Call a DoFn as a runner does, one bundle at a time; returns the outputs seen."""
    dofn.setup()
    outputs = 0
    for bundle in bundles:
        dofn.start_bundle()
        for element in bundle:
            for _ in dofn.process(element) or ():
                outputs += 1
        dofn.finish_bundle()
    dofn.teardown()
    return outputs


def run_step(step: str, build: Path, warc: Path, scratch: Path) -> int:
    """One step over one size's build; returns the number of outputs."""
    from beam_jobs import fetch_job
    from beam_jobs.dedup_job import Features
    from beam_jobs.extract_job import _ExtractClean
    from beam_jobs.sharded_parquet import _WriteShard
    from webtext_pipeline.clean import CleanConfig
    from webtext_pipeline.dedup.model import DedupParams
    from webtext_pipeline.extract import ExtractConfig
    from webtext_pipeline.fetch import FetchConfig
    from webtext_pipeline.records import FETCHED_SCHEMA

    if step == "links":  # read+parse+filter of each dump file (warc's sibling folder)
        from beam_jobs.links_job import ReadAndFilter
        from webtext_pipeline.links.submissions import LinkRules

        files = sorted(str(path) for path in (warc.parent / "dumps").iterdir())
        return _run_bundles(ReadAndFilter(LinkRules()), ([path] for path in files))
    if step == "fetch":
        config = FetchConfig(warc_dir=str(scratch / "warc"), warc_cache=(str(warc),), offline=True)
        batches = enumerate(_rows(build / "links", fetch_job.DEFAULT_BATCH_SIZE,
                                  fetch_job.INPUT_COLUMNS))
        bundles = ([batch] for batch in batches)
        return _run_bundles(fetch_job.FetchBatches(config), bundles)
    if step == "extract":
        dofn = _ExtractClean(ExtractConfig(), CleanConfig())
        return _run_bundles(dofn, _rows(build / "fetched", BUNDLE_ROWS))
    if step == "dedup-features":
        return _run_bundles(Features(DedupParams()), _rows(build / "clean", BUNDLE_ROWS))
    if step == "write-shard":
        per_shard = fetch_job.rows_per_shard()
        dofn = _WriteShard(str(scratch), "part", FETCHED_SCHEMA, 10**6,
                           fetch_job.fetched_sort_key, {}, fetch_job.ROW_GROUP_ROWS)
        shards = ([(index, rows)] for index, rows in enumerate(_rows(build / "fetched", per_shard)))
        return _run_bundles(dofn, shards)
    raise ValueError(step)


def measure(step: str, build: Path, warc: Path) -> dict:
    """Run one step in a fresh process; its peak RSS (children included) and time."""
    import psutil

    scratch = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--step", step, str(build), str(warc),
                             str(scratch)], stdout=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            try:
                root = psutil.Process(proc.pid)
                tree = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    sampler.join()
    shutil.rmtree(scratch, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"step {step} on {build} failed (exit {proc.returncode})")
    return {"peak": peak[0], "seconds": time.perf_counter() - started,
            "outputs": json.loads(out)["outputs"]}


def prepare(workdir: Path, submissions: int) -> tuple[Path, Path]:
    """bench_scale's synthetic input, built through the extract stage once (in_memory)."""
    import bench_scale

    dumps, warc, _facts = bench_scale.synthetic_input(workdir, submissions)
    build = workdir / f"worker-memory-build-{submissions}"
    if not (build / "clean").is_dir():
        shutil.rmtree(build, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "webtext_pipeline.cli", "build", "--dumps",
                        str(dumps), "--warc-cache", str(warc), "--offline", "--out", str(build),
                        "--until", "extract", "--runner", "DirectRunner"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return build, warc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1,
                        help="fraction of 1M submissions / 100k pages for 1× (default 0.1)")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bench-scale")
    parser.add_argument("--step", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step, build, warc, scratch = args.step
        print(json.dumps({"outputs": run_step(step, Path(build), Path(warc), Path(scratch))}))
        return
    print(machine_line())
    print(f"load average before: {load_average()}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    base = int(1_000_000 * args.scale)
    builds = {size: prepare(args.workdir, base * size) for size in (1, 2)}
    rows = []
    for step in args.steps:
        one, two = (measure(step, *builds[size]) for size in (1, 2))
        rows.append([step, f"{one['outputs']:,}", f"{two['outputs']:,}",
                     f"{one['seconds']:.1f} s", f"{two['seconds']:.1f} s",
                     f"{two['seconds'] / one['seconds']:.2f}×",
                     fmt_mib(one["peak"]), fmt_mib(two["peak"]),
                     f"{two['peak'] / one['peak']:.2f}×"])
        print(f"  {step}: {rows[-1]}", flush=True)
    print(f"load average after: {load_average()}")
    print_table(f"One worker's steps in bounded bundles, 1× = {base // 10:,} pages and 2×",
                ["step", "outputs 1×", "outputs 2×", "time 1×", "time 2×", "time ratio",
                 "peak RSS 1×", "peak RSS 2×", "RSS ratio"], rows)


if __name__ == "__main__":
    main()
