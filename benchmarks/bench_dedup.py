#!/usr/bin/env python3
"""Benchmarks for the dedup stage; every section prints a table (docs/dedup.md keeps them).

    python benchmarks/bench_dedup.py layout                    # S-curves of the layouts
    python benchmarks/bench_dedup.py signatures [--docs 3000]  # signatures/s per core
    python benchmarks/bench_dedup.py quality [--seeds 1 2 3]   # P/R on the labelled eval sets
    python benchmarks/bench_dedup.py unionfind [--nodes 1000000]  # bytes per clustered doc
    python benchmarks/bench_dedup.py stage [--sizes 100000 200000 400000] [--beam "FLAGS"]
    python benchmarks/bench_dedup.py all

Anchors run in the same process on the same documents: datasketch's MinHash
`update()` loop and `MinHash.bulk` for signatures, a plain datasketch
`MinHashLSH(threshold, num_perm)` for quality. Eval sets come from
../shared/eval/make_neardup_eval.py (real prose once `apt-get install
python3.11-doc fortunes`), or `--eval-dir DIR` (repeatable) for sets made elsewhere.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import random
import resource
import shlex
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webtext_pipeline.dedup import DedupParams, choose_layout  # noqa: E402
from webtext_pipeline.dedup import documents as dd  # noqa: E402
from webtext_pipeline.dedup.clusters import UnionFind  # noqa: E402
from webtext_pipeline.dedup.local import dedup_local  # noqa: E402
from webtext_pipeline.dedup.lsh import BandLayout  # noqa: E402
from webtext_pipeline.dedup.shingles import shingle_strings  # noqa: E402

GENERATOR = ROOT.parent / "shared" / "eval" / "make_neardup_eval.py"
CACHE = Path(os.environ.get("WEBTEXT_BENCH_CACHE", "/tmp/webtext-bench-dedup"))


def table(headers: list[str], rows: list[list]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print()


# ----------------------------------------------------------------------------- eval sets


def eval_set(seed: int, extra: list[str]) -> Path:
    tag = hashlib.sha1(" ".join(extra).encode()).hexdigest()[:8] if extra else "debian"
    out = CACHE / f"eval-seed{seed}-{tag}"
    if not (out / "pairs.tsv").exists():
        subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--seed", str(seed),
                        *extra], check=True, capture_output=True)
    return out


def load_eval(directory: Path):
    docs = [json.loads(line) for line in (directory / "docs.jsonl").open()]
    truth = {}
    with (directory / "pairs.tsv").open() as handle:
        next(handle)
        for line in handle:
            a, b, value, _relation = line.split("\t")
            truth[(a, b) if a > b else (b, a)] = float(value)
    meta = json.loads((directory / "meta.json").read_text())
    return docs, truth, meta


# ----------------------------------------------------------------------------- layout


def cmd_layout(args) -> None:
    print(f"## Band layouts and their S-curves (num_perm={args.num_perm})\n")
    points = [0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    rows = []
    for threshold in (0.5, 0.7, 0.8, 0.9):
        layout = choose_layout(threshold, args.num_perm)
        rows.append([f"ours t={threshold}", f"{layout.bands}x{layout.rows}"]
                    + [f"{layout.probability(s):.4f}" for s in points])
    try:
        from datasketch import MinHashLSH

        for threshold in (0.5, 0.8):
            lsh = MinHashLSH(threshold=threshold, num_perm=args.num_perm)
            layout = BandLayout(lsh.b, lsh.r)
            rows.append([f"datasketch t={threshold}", f"{lsh.b}x{lsh.r}"]
                        + [f"{layout.probability(s):.4f}" for s in points])
    except ImportError:
        pass
    table(["layout", "bands x rows"] + [f"P({s})" for s in points], rows)


# ----------------------------------------------------------------------------- signatures


def cmd_signatures(args) -> None:
    import numpy as np
    from datasketch import MinHash

    path = eval_set(1, [])
    docs = [json.loads(line)["text"] for line in (path / "docs.jsonl").open()][: args.docs]
    chars = sum(map(len, docs)) / len(docs)
    params = DedupParams(num_perm=args.num_perm)
    dd.features(docs[0], params)  # permutations and power tables built outside the clock

    def ours():
        return [dd.features(text, params).signature for text in docs]

    def update_loop():
        out = []
        for text in docs:
            m = MinHash(num_perm=args.num_perm)
            for gram in shingle_strings(text):
                m.update(gram.encode("utf-8"))
            out.append(m)
        return out

    def bulk_raw():
        return MinHash.bulk(
            [[g.encode("utf-8") for g in shingle_strings(t)] for t in docs], num_perm=args.num_perm
        )

    encoded = [[g.encode("utf-8") for g in shingle_strings(t)] for t in docs]

    def bulk_pre():
        return MinHash.bulk(encoded, num_perm=args.num_perm)

    results = []
    for name, fn, n in [
        ("ours: features() from raw text (tokens, shingles, exact key, signature)", ours,
         len(docs)),
        ("datasketch update() loop, from raw text", update_loop, min(len(docs), 600)),
        ("datasketch MinHash.bulk, from raw text", bulk_raw, len(docs)),
        ("datasketch MinHash.bulk, shingles precomputed", bulk_pre, len(docs)),
    ]:
        saved = docs[:]
        docs[:] = docs[:n]
        best = math.inf
        for _ in range(args.repeat):
            gc.collect()
            started = time.process_time()
            fn()
            best = min(best, time.process_time() - started)
        docs[:] = saved
        results.append([name, n, f"{n / best:,.0f}"])
    print(f"## Signatures per second per core ({len(docs)} eval docs, mean {chars:,.0f} chars, "
          f"{args.num_perm} permutations, CPU time, best of {args.repeat})\n")
    table(["method", "docs", "docs/s"], results)
    sample = docs[:50]
    same = all(
        np.array_equal(dd.features(t, params).signature, _datasketch_twin(t, args.num_perm))
        for t in sample
    )
    print("signatures equal to datasketch's (same shingles, hashfunc = our shingle hash): "
          f"{same}\n")


def _datasketch_twin(text: str, num_perm: int):
    from datasketch import MinHash

    from webtext_pipeline.dedup import minhash as mh
    from webtext_pipeline.dedup import shingles as sh

    words = sh.tokens(text)
    width = min(5, len(words))
    grams = [tuple(words[i : i + width]) for i in range(len(words) - width + 1)]
    m = MinHash(num_perm=num_perm, scheme=mh.SCHEME,
                hashfunc=lambda g: mh.low32(sh.shingle_hash([sh.token_hash(w) for w in g])))
    m.update_batch(grams)
    return m.hashvalues


# ----------------------------------------------------------------------------- quality


def _pr(found: set, true: set) -> tuple[str, str, int]:
    hits = len(found & true)
    precision = hits / len(found) if found else float("nan")
    recall = hits / len(true) if true else float("nan")
    return f"{precision:.4f}", f"{recall:.4f}", len(found)


def datasketch_pairs(docs, threshold: float, num_perm: int, verify: bool):
    from datasketch import MinHash, MinHashLSH

    sets = [[g.encode("utf-8") for g in shingle_strings(d["text"])] for d in docs]
    sketches = MinHash.bulk(sets, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    ids = [str(d["id"]) for d in docs]
    for doc_id, m in zip(ids, sketches, strict=True):
        lsh.insert(doc_id, m, check_duplication=False)
    found = set()
    for i, m in enumerate(sketches):
        for other in lsh.query(m):
            a = ids[i]
            if other != a:
                pair = (a, other) if a > other else (other, a)
                found.add(pair)
    if verify:
        index = {doc_id: m for doc_id, m in zip(ids, sketches, strict=True)}
        found = {p for p in found if index[p[0]].jaccard(index[p[1]]) >= threshold}
    return found, f"{lsh.b}x{lsh.r}"


def cmd_quality(args) -> None:
    extra = ["--prose-dir", args.prose_dir] if args.prose_dir else []
    dirs = [Path(d) for d in args.eval_dir] or [eval_set(seed, extra) for seed in args.seeds]
    threshold = args.threshold
    rows, bins_rows = [], []
    for directory in dirs:
        docs, truth, meta = load_eval(directory)
        docs = [{"id": str(d["id"]), "text": d["text"]} for d in docs]
        true = {p for p, v in truth.items() if v >= threshold}
        source = meta["source"].split(":")[0].split("(")[0].split(" ")[0]
        label = f"seed {meta['seed']} {source} ({len(docs)} docs, {len(true)} true pairs)"
        for name, params in [
            ("ours (exact verify)", DedupParams(threshold=threshold, num_perm=args.num_perm)),
            ("ours (minhash verify)",
             DedupParams(threshold=threshold, num_perm=args.num_perm, verify="minhash")),
        ]:
            started = time.perf_counter()
            result = dedup_local(docs, params)
            seconds = time.perf_counter() - started
            layout = params.layout
            p, r, n = _pr(result.duplicate_pairs(), true)
            cp, cr, _cn = _pr(result.cluster_pairs(), true)
            removed = set()
            for row in result.rejects:
                kept = row["detail"].split()[0].removeprefix("kept=")
                removed.add((row["key"], kept) if row["key"] > kept else (kept, row["key"]))
            rp, _rr, _rn = _pr(removed, true)
            rows.append([label, name, f"{layout.bands}x{layout.rows}", p, r, n, cp, cr, rp,
                         f"{seconds:.1f}"])
            if name.startswith("ours (exact"):
                found = result.duplicate_pairs()
                for low, high in ((0.8, 0.85), (0.85, 0.9), (0.9, 0.95), (0.95, 1.01)):
                    band = {k for k in true if low <= truth[k] < high}
                    if band:
                        bins_rows.append([label, f"[{low:.2f}, {min(high, 1):.2f}"
                                          + ("]" if high > 1 else ")"), len(band),
                                          f"{len(band & found) / len(band):.4f}"])
        for verify in (False, True):
            started = time.perf_counter()
            found, layout = datasketch_pairs(docs, threshold, args.num_perm, verify)
            seconds = time.perf_counter() - started
            p, r, n = _pr(found, true)
            name = "datasketch MinHashLSH" + (" + minhash verify" if verify else "")
            rows.append([label, name, layout, p, r, n, "", "", "", f"{seconds:.1f}"])
    print(f"## Quality at threshold {threshold} ({args.num_perm} permutations); pairs with exact "
          "word-5-gram Jaccard >= threshold are the truth\n")
    print("`pairs`: the pairs the method declares duplicates (ours: verified edges spread over "
          "exact groups; datasketch: LSH query results). `cluster`: every pair that ends in one "
          "connected component (what removal acts on; transitive links add pairs below the "
          "threshold). `removed→kept`: each removed document paired with the kept one its "
          "reject row names.\n")
    table(["set", "method", "layout", "P pairs", "R pairs", "n pairs", "P cluster",
           "R cluster", "P removed→kept", "s"], rows)
    print("Recall of ours (exact verify) by true Jaccard:\n")
    table(["set", "Jaccard", "true pairs", "recall"], bins_rows)


# ----------------------------------------------------------------------------- union-find


def cmd_unionfind(args) -> None:
    rng = random.Random(1)
    ids = [hashlib.sha1(str(i).encode()).hexdigest()[:16] for i in range(args.nodes)]
    # clusters of 2-6 documents, the shape duplicate edges have
    edges, i = [], 0
    while i < len(ids):
        size = rng.randint(2, 6)
        group = ids[i : i + size]
        edges.extend((group[k], group[0]) for k in range(1, len(group)))
        i += size
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    finder = UnionFind()
    started = time.perf_counter()
    for a, b in edges:
        finder.union(a, b)
    seconds = time.perf_counter() - started
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # the id strings already exist here (as they would, unpickled from the edges)
    strings = sum(sys.getsizeof(s) for s in ids)
    print(f"## Union-find memory ({len(finder):,} clustered documents, 16-character ids)\n")
    table(["what", "bytes per document"], [
        ["intern dict + id list + parent array (tracemalloc)", f"{held / len(finder):.0f}"],
        ["the id strings themselves", f"{strings / len(finder):.0f}"],
        ["total held by the component step", f"{(held + strings) / len(finder):.0f}"],
    ])
    print(f"{len(edges):,} unions in {seconds:.1f} s ({len(edges) / seconds:,.0f} edges/s)\n")


# ----------------------------------------------------------------------------- the stage


def scale_docs(n: int, seed: int, paragraphs: list[str]):
    """n documents of ~3.2 KB: 80 % distinct, 8 % exact copies, 12 % near copies."""
    rng = random.Random(seed)
    words = [w for p in paragraphs[:3000] for w in p.split() if w.isalpha()]
    made: list[str] = []
    for i in range(n):
        roll = rng.random()
        if made and roll < 0.08:
            text = rng.choice(made[-5000:]).upper()
        elif made and roll < 0.20:
            parts = rng.choice(made[-5000:]).split(" ")
            for _ in range(max(1, len(parts) // rng.choice([100, 50, 33]))):
                parts[rng.randrange(len(parts))] = rng.choice(words)
            text = " ".join(parts)
        else:
            chunks, size = [], 0
            target = int(min(9000, max(800, rng.lognormvariate(math.log(3000), 0.35))))
            while size < target:
                chunks.append(rng.choice(paragraphs))
                size += len(chunks[-1]) + 2
            text = "\n\n".join(chunks)
        made.append(text)
        yield {
            "id": hashlib.sha1(f"{seed}:{i}".encode()).hexdigest()[:16],
            "text": text,
            "reddit_score": rng.randrange(1, 500),
            "created_utc": 1_300_000_000 + rng.randrange(200_000_000),
        }
        if len(made) > 20000:
            del made[:10000]


def write_scale_input(n: int, directory: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    marker = directory / "_done"
    if marker.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(GENERATOR.parent))
    import make_neardup_eval as gen

    paragraphs, _source = gen.load_paragraphs(argparse.Namespace(prose_dir=None), random.Random(1))
    batch, part = [], 0
    for doc in scale_docs(n, 7, paragraphs):
        batch.append(doc)
        if len(batch) == 25_000:
            pq.write_table(pa.Table.from_pylist(batch), directory / f"in-{part:04d}.parquet")
            batch, part = [], part + 1
    if batch:
        pq.write_table(pa.Table.from_pylist(batch), directory / f"in-{part:04d}.parquet")
    marker.write_text("ok")
    return directory


def cmd_stage_child(args) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.dedup_job import run_dedup

    flags = ["--runner", "DirectRunner", *args.beam]
    started = time.perf_counter()
    if args.floor:
        summary = _floor(args.input, args.output, PipelineOptions(flags))
    else:
        summary = run_dedup(args.input, args.output, PipelineOptions(flags), DedupParams())
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps({"summary": summary.as_dict(), "wall": wall, "cpu": cpu,
                      "rss_self": usage.ru_maxrss * 1024,
                      "rss_children_max": kids.ru_maxrss * 1024}), flush=True)
    os._exit(0)  # skip interpreter teardown: gRPC threads left by the runner can abort it


def _floor(in_dir: str, out_dir: str, options):
    """The same documents read and written as sorted shards, nothing else: what the
    DirectRunner costs just to move them (one shuffle)."""
    import apache_beam as beam
    from apache_beam.io.parquetio import ReadAllFromParquet

    from beam_jobs import dedup_job
    from beam_jobs.sharded_parquet import WriteSortedShards

    files = dedup_job.input_files(in_dir)
    schema, rows, nbytes = dedup_job.inspect_inputs(files)
    shards = max(1, math.ceil(rows / dedup_job.ROWS_PER_SHARD),
                 math.ceil(nbytes / dedup_job.BYTES_PER_SHARD))
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | beam.Create([path for path, _size, _mtime in files])
            | ReadAllFromParquet()
            | WriteSortedShards(out_dir, "part", schema, shards, dedup_job.doc_sort_key)
        )
    return dedup_job.DedupSummary(rows_in=rows, kept=rows)


def cmd_stage(args) -> None:
    rows = []
    for n in args.sizes:
        src = write_scale_input(n, CACHE / f"scale-{n}")
        out = CACHE / f"scale-{n}-out"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        for floor in ([False, True] if args.floor else [False]):
            subprocess.run(["rm", "-rf", str(out)], check=True)
            cmd = [sys.executable, __file__, "_stage_child", "--input", str(src), "--output",
                   str(out), "--beam", shlex.join(args.beam)] + (["--floor"] if floor else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                raise SystemExit(f"stage run failed for n={n}")
            found = json.loads(proc.stdout.strip().splitlines()[-1])
            summary = found["summary"]
            rejects = summary["rejects"]
            rows.append([
                "read+write only" if floor else "dedup stage",
                f"{n:,}", f"{found['wall']:.0f}", f"{found['cpu']:.0f}",
                f"{n / found['wall']:,.0f}",
                f"{found['rss_self'] / 2**20:,.0f}",
                f"{found['rss_children_max'] / 2**20:,.0f}" if found["rss_children_max"] else "-",
                f"{found['rss_self'] / n:,.0f}",
                summary["out"], rejects.get("exact_duplicate", 0),
                rejects.get("near_duplicate", 0), summary["balanced"],
            ])
            print("progress:", " | ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    mode = " ".join(args.beam) or "--direct_running_mode=in_memory (default)"
    print(f"## The whole stage on the DirectRunner ({mode}), ~3.2 KB documents\n")
    headers = ["pipeline", "docs", "wall s", "CPU s", "docs/s", "peak RSS runner MB",
               "peak RSS worker MB", "runner RSS bytes/doc", "kept", "exact", "near", "balanced"]
    if all(row[6] == "-" for row in rows):  # in-memory mode: no separate worker processes
        headers.pop(6)
        rows = [row[:6] + row[7:] for row in rows]
    table(headers, rows)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=["all", "layout", "signatures", "quality",
                                            "unionfind", "stage", "_stage_child"])
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--eval-dir", action="append", default=[])
    parser.add_argument("--prose-dir", default=None)
    parser.add_argument("--nodes", type=int, default=1_000_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    parser.add_argument("--floor", action="store_true",
                        help="stage: also time read+write of the same docs without dedup")
    parser.add_argument("--input")
    parser.add_argument("--output")
    parser.add_argument("--beam", default="", help="Beam flags for the stage runs, one string")
    args = parser.parse_args(argv)
    args.beam = shlex.split(args.beam)
    sections = {
        "layout": cmd_layout, "signatures": cmd_signatures, "quality": cmd_quality,
        "unionfind": cmd_unionfind, "stage": cmd_stage, "_stage_child": cmd_stage_child,
    }
    if args.section == "all":
        for name in ("layout", "signatures", "quality", "unionfind", "stage"):
            sections[name](args)
    else:
        sections[args.section](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
