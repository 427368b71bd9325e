"""The sample build, stage by stage: wall time, peak memory, documents/s; 1 and 2 workers.

    python benchmarks/bench_build.py [--workers 1 2] [--repeats 3]

Each stage is measured as its own `webtext build --until STAGE` process in a
fresh folder, after the stages before it finished (they are reused, so the
process does that stage's work plus a fingerprint check for each earlier
one). Peak memory is the summed RSS of the process tree (the runner and, with
multi_processing, its workers). The anchor is the same build with one worker:
the table quotes each configuration's median against it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt_mib, fmt_ratio, load_average, median, print_table, run_measured  # noqa: E402

STAGES = ("links", "fetch", "extract", "dedup", "shards", "tokens", "model")


def runner_flags(workers: int) -> list[str]:
    if workers == 1:
        return []
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


def one_build(workers: int, root: Path) -> dict[str, dict]:
    """Every stage of one build into a fresh folder: {stage: {wall, rss}}."""
    out = root / f"w{workers}"
    shutil.rmtree(out, ignore_errors=True)
    results = {}
    for stage in STAGES:
        argv = [sys.executable, "-m", "webtext_pipeline.cli", "build", "--cutoff", "2017-12",
                "--out", str(out), "--until", stage, *runner_flags(workers)]
        measured = run_measured(argv)
        if measured.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{measured.stderr[-2000:]}")
        results[stage] = {"wall": measured.wall_s, "rss": measured.peak_tree_rss}
    manifest = json.loads((out / "MANIFEST.json").read_text())
    results["documents"] = manifest["corpus"]["rows"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {load_average()}")
    runs: dict[int, list[dict]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.repeats):  # round robin: a slow spell hits every case
            for workers in args.workers:
                runs[workers].append(one_build(workers, Path(tmp)))
                total = sum(runs[workers][-1][s]["wall"] for s in STAGES)
                print(f"  round {round_no + 1}: {workers} worker(s): {total:.1f} s", flush=True)
    anchor = args.workers[0]
    rows = []
    for stage in STAGES:
        row = [stage]
        for workers in args.workers:
            wall = median([r[stage]["wall"] for r in runs[workers]])
            rss = max(r[stage]["rss"] for r in runs[workers])
            row += [f"{wall:.1f} s", fmt_mib(rss)]
        rows.append(row)
    totals = ["whole build"]
    rates = ["documents/s end to end"]
    for workers in args.workers:
        wall = median([sum(r[s]["wall"] for s in STAGES) for r in runs[workers]])
        docs = runs[workers][0]["documents"]
        anchor_wall = median([sum(r[s]["wall"] for s in STAGES) for r in runs[anchor]])
        totals += [f"{wall:.1f} s ({fmt_ratio(anchor_wall / wall)} vs {anchor})", ""]
        rates += [f"{docs / wall:.2f} ({docs} docs)", ""]
    rows += [totals, rates]
    headers = ["stage"]
    for workers in args.workers:
        headers += [f"{workers} worker(s): median wall", "peak tree RSS"]
    print_table(f"Sample build, median of {args.repeats}", headers, rows)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
