"""Reproduce Beam 2.77's local-runner row loss, with and without webtext's fix.

Pure Beam, no webtext stage: N rows of ~5 KB go through a GroupByKey, then a
two-input Flatten (rows + one marker per shard, as our shard writers do) into a
second GroupByKey, on the DirectRunner with `--direct_running_mode=MODE`.
Each trial runs in its own process, with Beam's defaults ("off") or after
`beam_jobs.new_pipeline.disable_time_based_flushing()` ("on"), and counts the
rows that come out of the Flatten and out of the last GroupByKey.

    python benchmarks/repro_beam_flatten_loss.py --rows 200000 --trials 3

At 200,000 rows (~1 GB through the Flatten, 2 workers) the defaults lose rows
in most trials; with the fix none. See beam_jobs/new_pipeline.py for the cause.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zlib

SHARDS = 100
BUCKETS = 400
SEED_ROWS = 1_000


def run_trial(rows: int, payload: int, mode: str, fix: bool) -> dict:
    import apache_beam as beam
    from apache_beam.metrics import Metrics
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.new_pipeline import disable_time_based_flushing

    if fix:
        disable_time_based_flushing()
    flattened = Metrics.counter("repro", "flattened")
    grouped = Metrics.counter("repro", "grouped")

    def make_rows(seed: int):
        for i in range(seed, min(seed + SEED_ROWS, rows)):
            yield {"url": f"http://site{i % 300}.example/{i}", "html": "x" * payload}

    def count_flattened(kv):
        if kv[1] is not None:
            flattened.inc()
        return kv

    options = PipelineOptions([f"--direct_running_mode={mode}", "--direct_num_workers=2"])
    pipeline = beam.Pipeline(options=options)
    keyed = (
        pipeline
        | beam.Create(list(range(0, rows, SEED_ROWS)))
        | beam.FlatMap(make_rows)
        | beam.Map(lambda r: (zlib.crc32(r["url"].split("/")[2].encode()) % BUCKETS, r))
        | "ByHost" >> beam.GroupByKey()
        | beam.FlatMap(lambda kv: ((zlib.crc32(r["url"].encode()) % SHARDS, r) for r in kv[1]))
    )
    markers = pipeline | "Shards" >> beam.Create(range(SHARDS)) | beam.Map(lambda i: (i, None))
    _ = (
        (keyed, markers)
        | beam.Flatten()
        | beam.Map(count_flattened)
        | "ByShard" >> beam.GroupByKey()
        | beam.Map(lambda kv: grouped.inc(sum(1 for r in kv[1] if r is not None)))
    )
    result = pipeline.run()
    result.wait_until_finish()
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    return {"flattened": counters.get("flattened", 0), "grouped": counters.get("grouped", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--payload", type=int, default=5_000, help="bytes of html per row")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--mode", default="multi_processing")
    parser.add_argument("--trial", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(run_trial(args.rows, args.payload, args.mode, args.trial == "on")))
        return
    print(f"{args.rows:,} rows of {args.payload:,} B, {args.mode}, 2 workers")
    print(f"{'fix':>4} {'trial':>5} {'flattened':>10} {'grouped':>10} {'lost':>8}")
    env = dict(os.environ, WEBTEXT_PROGRESS="0")
    for fix in ("off", "on"):
        for trial in range(1, args.trials + 1):
            cmd = [sys.executable, __file__, "--rows", str(args.rows), "--payload",
                   str(args.payload), "--mode", args.mode, "--trial", fix]
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            counts = json.loads(done.stdout.strip().splitlines()[-1])
            lost = args.rows - counts["grouped"]
            print(f"{fix:>4} {trial:>5} {counts['flattened']:>10,} {counts['grouped']:>10,} "
                  f"{lost:>8,}", flush=True)


if __name__ == "__main__":
    main()
