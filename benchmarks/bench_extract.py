#!/usr/bin/env python3
"""Extract + clean + language throughput against trafilatura alone, on the dev pages.

    python benchmarks/bench_extract.py speed [--rounds 5]   # pages/s per core, step profile
    python benchmarks/bench_extract.py quality              # F1 of the libraries and our variants
    python benchmarks/bench_extract.py rules                # what each cleaning rule removes
    python benchmarks/bench_extract.py lang                 # langdetect cost vs prefix length
    python benchmarks/bench_extract.py all

The anchor, `trafilatura.extract(html, url=url)` with its defaults, runs in the
same process on the same pages, interleaved round by round with ours, so a
busy spell on the shared machine hits both alike. "Per core" is pages per CPU
second of the process doing the work (user + system; for the isolated worker
the child's CPU, read from /proc, is added), which is what one core
sustains. The figures quoted are medians over rounds.

Pages: ../shared/eval/extraction/dev (or --dir).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _common import load_average, machine_line, print_table  # noqa: E402

from webtext_pipeline.clean import (  # noqa: E402
    DEFAULT_CONFIG as CLEAN_DEFAULT,
)
from webtext_pipeline.clean import (  # noqa: E402
    clean_text,
    detect_language,
    normalize_text,
    split_boilerplate,
    text_stats,
)
from webtext_pipeline.extract import (  # noqa: E402
    DEFAULT_CONFIG,
    ExtractWorker,
    extract_page,
)

DEFAULT_DIR = HERE.parent.parent / "shared" / "eval" / "extraction" / "dev"


def load_pages(directory: Path) -> list[dict]:
    import json

    meta = {}
    index = directory / "index.jsonl"
    if index.exists():
        for line in index.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                meta[row["id"]] = row
    pages = []
    for html_path in sorted(directory.glob("*.html")):
        page_id = html_path.stem
        truth = directory / f"{page_id}.txt"
        pages.append(
            {
                "id": page_id,
                "html": html_path.read_text(encoding="utf-8", errors="replace"),
                "truth": truth.read_text(encoding="utf-8") if truth.exists() else "",
                "url": meta.get(page_id, {}).get("url"),
            }
        )
    if not pages:
        sys.exit(f"no pages in {directory}")
    return pages


def _child_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# --------------------------------------------------------------------------


def run_trafilatura(pages):
    import trafilatura

    for page in pages:
        trafilatura.extract(page["html"], url=page["url"])


def run_ours(pages, config, steps: dict[str, float], counts: dict[str, int]):
    for page in pages:
        ex = extract_page(page["html"], page["url"], config, "2026-01-01", profile=True)
        for step, seconds in ex.timings.items():
            steps[step] = steps.get(step, 0.0) + seconds
        counts[ex.extractor or "none"] = counts.get(ex.extractor or "none", 0) + 1
        if ex.text:
            clean_text(ex.text, CLEAN_DEFAULT, steps)


def run_isolated(pages, worker: ExtractWorker):
    for page in pages:
        status, payload = worker.run(page["html"], page["url"], "2026-01-01")
        if status == "ok" and payload.text:
            clean_text(payload.text, CLEAN_DEFAULT)


def speed(pages, rounds: int, isolated: bool, shares: list[float]) -> None:
    import dataclasses

    print(f"machine: {machine_line()}; load {load_average()}", flush=True)
    n = len(pages)
    share = DEFAULT_CONFIG.second_opinion_share
    configs = {
        f"share {x:g}": dataclasses.replace(DEFAULT_CONFIG, second_opinion_share=x)
        for x in shares
        if x != share
    }
    workers = {}
    if isolated:
        workers[f"share {share:g}"] = ExtractWorker(DEFAULT_CONFIG)
        for name, config in configs.items():
            workers[name] = ExtractWorker(config)
    # warm-up: imports, htmldate caches, langdetect profiles
    run_trafilatura(pages[:10])
    run_ours(pages[:10], DEFAULT_CONFIG, {}, {})
    for worker in workers.values():
        run_isolated(pages[:10], worker)
    results: dict[str, list[tuple[float, float]]] = {}
    steps: dict[str, float] = {}
    counts: dict[str, int] = {}
    for round_no in range(rounds):
        round_steps: dict[str, float] = {}
        round_counts: dict[str, int] = {}
        cases = [
            ("trafilatura", lambda: run_trafilatura(pages), None),
            (
                f"in process, share {share:g}",
                lambda rs=round_steps, rc=round_counts: run_ours(pages, DEFAULT_CONFIG, rs, rc),
                None,
            ),
        ]
        for name, config in configs.items():
            cases.append((f"in process, {name}", lambda c=config: run_ours(pages, c, {}, {}), None))
        for name, worker in workers.items():
            cases.append((f"worker, {name}", lambda w=worker: run_isolated(pages, w), worker))
        for name, fn, worker in cases:
            child0 = _child_cpu(worker.pid) if worker is not None else 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if worker is not None:
                cpu += _child_cpu(worker.pid) - child0
            results.setdefault(name, []).append((wall, cpu))
            print(
                f"  round {round_no + 1}: {name}: {n / cpu:.1f} pages/s per core "
                f"({wall:.2f} s wall)",
                flush=True,
            )
        if round_no == 0 or sum(round_steps.values()) < sum(steps.values()):
            steps, counts = round_steps, round_counts
    for worker in workers.values():
        worker.close()

    def med(name, i):
        return statistics.median(r[i] for r in results[name])

    base = n / med("trafilatura", 1)
    rows = []
    for name in results:
        label = (
            "trafilatura.extract (defaults), alone"
            if name == "trafilatura"
            else f"extract + clean + language, {name}"
        )
        per_core = n / med(name, 1)
        rows.append([label, f"{per_core:.1f}", f"{n / med(name, 0):.1f}", f"{per_core / base:.2f}"])
    print_table(
        f"Throughput on {n} dev pages, median of {rounds} rounds "
        f"(shipped: share {share:g}; 'worker' = through the killable ExtractWorker)",
        ["pipeline", "pages/s per core", "pages/s wall", "vs trafilatura"],
        rows,
    )
    total = sum(steps.values())
    order = [
        "parse",
        "metadata",
        "prepare",
        "trafilatura",
        "readability",
        "combine",
        "normalize",
        "language",
        "rules",
    ]
    prow = []
    for step in order + sorted(set(steps) - set(order)):
        if step in steps:
            prow.append(
                [step, f"{1000 * steps[step] / n:.2f}", f"{100 * steps[step] / total:.0f}%"]
            )
    prow.append(["total", f"{1000 * total / n:.2f}", "100%"])
    print_table(
        "Where the time goes (fastest round, ms per page, wall)", ["step", "ms/page", "share"], prow
    )
    print("extractor kept: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(
        f"readability ran on {n - counts.get('trafilatura', 0) - counts.get('none', 0)} of {n} "
        "pages"
    )


# --------------------------------------------------------------------------


def quality(pages, directory: Path) -> None:
    """bow and AEB F1 (the shared scorer's own metric code) of the libraries and our variants."""
    import dataclasses
    import importlib.util

    scorer_path = directory.parents[1] / "score_extraction.py"
    spec = importlib.util.spec_from_file_location("score_extraction", scorer_path)
    scorer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scorer)

    def ours(**changes):
        config = dataclasses.replace(DEFAULT_CONFIG, isolate=False, **changes)
        return lambda html, url: extract_page(html, url, config).text

    variants = [
        ("trafilatura, defaults", scorer.trafilatura_default),
        ("trafilatura, include_comments=False", scorer.trafilatura_no_comments),
        ("trafilatura, favor_recall", scorer.trafilatura_recall),
        ("readability-lxml", scorer.readability_lxml),
        ("jusText", scorer.justext_english),
        ("trafilatura, readability if < 200 chars", scorer.trafilatura_then_readability),
        ("ours: trafilatura only (readability='never')", ours(readability="never")),
        ("ours: ... without furniture removal", ours(readability="never", strip_furniture=False)),
        ("ours: readability on every page ('always')", ours(readability="always")),
        ("ours: second opinion at share 0.35", ours(second_opinion_share=0.35)),
        ("ours, shipped (share 0.5)", ours()),
        ("ours, shipped, without furniture removal", ours(strip_furniture=False)),
    ]
    rows = []
    for name, fn in variants:
        per_page, seconds = [], 0.0
        for page in pages:
            t0 = time.process_time()
            out = fn(page["html"], page["url"]) or ""
            seconds += time.process_time() - t0
            per_page.append(
                {
                    "bow": scorer.bow_scores(page["truth"], out),
                    "aeb": scorer.aeb_tp_fp_fn(page["truth"], out),
                }
            )
        summary = scorer.summarise(per_page, 0)
        rows.append(
            [
                name,
                f"{summary['bow']['f1']:.3f}",
                f"{summary['bow']['precision']:.3f}",
                f"{summary['bow']['recall']:.3f}",
                f"{summary['aeb']['f1']:.3f}",
                f"{1000 * seconds / len(pages):.1f}",
            ]
        )
        print(f"  {name}: bow F1 {summary['bow']['f1']:.4f}", flush=True)
    print_table(
        f"Extraction quality on {len(pages)} dev pages (score_extraction.py metrics)",
        ["extractor", "bow F1", "bow P", "bow R", "AEB F1", "ms/page (CPU)"],
        rows,
    )


def rules(pages) -> None:
    """For each rule: dev pages (English reference texts, and our extractions) it would reject."""
    from webtext_pipeline.clean.rules import RULES

    english = []
    for page in pages:
        truth = normalize_text(page["truth"])
        if detect_language(truth)[0] == "en":
            ours = normalize_text(extract_page(page["html"], page["url"]).text)
            english.append((page["id"], truth, ours))
    names = [rule.__name__.removeprefix("rule_") for rule in RULES]
    fired = {name: {"truth": [], "ours": []} for name in names}
    total_chars = {"truth": 0, "ours": 0}
    short = {"truth": [], "ours": []}
    for page_id, truth, ours in english:
        for which, text in (("truth", truth), ("ours", ours)):
            total_chars[which] += len(text)
            stats = text_stats(text, CLEAN_DEFAULT.ngram_n, CLEAN_DEFAULT.ngram_max_words)
            if stats.n_words < CLEAN_DEFAULT.min_words:
                short[which].append((page_id, len(text)))
            for rule, name in zip(RULES, names, strict=True):
                if rule(stats, CLEAN_DEFAULT) is not None:
                    fired[name][which].append((page_id, len(text)))
    consent = {"truth": [], "ours": []}
    for page_id, truth, ours in english:
        for which, text in (("truth", truth), ("ours", ours)):
            removed = split_boilerplate(text, CLEAN_DEFAULT.boilerplate_line_max_words)[1]
            if removed:
                consent[which].append((page_id, removed))
    rows = []
    for which_name, hits in [("consent lines (removed)", consent)]:
        cells = [which_name]
        for which in ("truth", "ours"):
            chars = sum(c for _, c in hits[which])
            cells += [str(len(hits[which])), f"{100 * chars / total_chars[which]:.1f}%"]
        cells.append(", ".join(sorted({p for p, _ in hits["truth"] + hits["ours"]})) or "-")
        rows.append(cells)
    for name, hits in [("too_short", short)] + [(n, fired[n]) for n in names]:
        cells = [name]
        for which in ("truth", "ours"):
            chars = sum(c for _, c in hits[which])
            cells += [str(len(hits[which])), f"{100 * chars / total_chars[which]:.1f}%"]
        cells.append(", ".join(sorted({p for p, _ in hits["truth"] + hits["ours"]})) or "-")
        rows.append(cells)
    print_table(
        f"Cleaning rules on the {len(english)} English dev pages, each rule alone",
        ["rule", "ref pages", "ref chars", "our pages", "our chars", "pages hit"],
        rows,
    )


def lang(pages) -> None:
    texts = [normalize_text(p["truth"]) for p in pages]
    full = [detect_language(t, 0) for t in texts]
    rows = []
    for max_chars in (0, 5000, 2000, 1000, 500):
        t0 = time.process_time()
        got = [detect_language(t, max_chars) for t in texts]
        ms = 1000 * (time.process_time() - t0) / len(texts)
        same = sum(a[0] == b[0] for a, b in zip(got, full, strict=True))
        min_en = min((p for lang_, p in got if lang_ == "en"), default=0.0)
        rows.append([max_chars or "all", f"{ms:.2f}", f"{same}/{len(texts)}", f"{min_en:.3f}"])
    print_table(
        "langdetect on the dev reference texts (mean 7,000 chars)",
        ["chars looked at", "ms/doc", "same language as all", "lowest 'en' prob"],
        rows,
    )
    n = CLEAN_DEFAULT.lang_chars
    ours = [normalize_text(extract_page(p["html"], p["url"]).text) for p in pages]
    whole = [detect_language(t, 0)[0] for t in ours]
    windows = disagree = 0
    for text, language in zip(ours, whole, strict=True):
        for offset in range(0, max(1, len(text) - n), n):
            windows += 1
            disagree += detect_language(text[offset:], n)[0] != language
    print(
        f"every {n}-char window of our extracted texts vs the whole text's language: "
        f"{disagree} of {windows} windows disagree"
    )
    repeat = [detect_language(t, CLEAN_DEFAULT.lang_chars) for t in texts]
    again = [detect_language(t, CLEAN_DEFAULT.lang_chars) for t in texts]
    print(f"deterministic across calls: {repeat == again}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["speed", "quality", "rules", "lang", "all"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--shares",
        type=float,
        nargs="*",
        default=[],
        help="also measure these second_opinion_share settings (the quality/speed dial)",
    )
    parser.add_argument(
        "--no-isolated",
        action="store_true",
        help="skip the ExtractWorker (killable process) measurement",
    )
    args = parser.parse_args(argv)
    pages = load_pages(args.dir)
    if args.what in ("speed", "all"):
        speed(pages, args.rounds, not args.no_isolated, args.shares)
    if args.what in ("quality", "all"):
        quality(pages, args.dir)
    if args.what in ("rules", "all"):
        rules(pages)
    if args.what in ("lang", "all"):
        lang(pages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
