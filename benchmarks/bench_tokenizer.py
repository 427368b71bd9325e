#!/usr/bin/env python3
"""Benchmarks for the tokenizer stage; every section prints a Markdown table (docs/tokenizer.md).

    python benchmarks/bench_tokenizer.py all                  # everything below (~15 min)
    python benchmarks/bench_tokenizer.py train [--sizes 10 50 200]   # time + peak memory
    python benchmarks/bench_tokenizer.py compression           # bytes/token vs sample size, GPT-2
    python benchmarks/bench_tokenizer.py encode [--encode-mb 12]     # MB/s, ours next to tiktoken
    python benchmarks/bench_tokenizer.py ... --docs OUT/docs   # a built corpus instead

Text. Without ``--docs`` there is no web corpus on this machine yet, so two
stand-ins are written once as corpus shards under ``--work``:

- ``prose``: real English written by people, the documentation that ships with
  the installed Python: docstrings and ``.md``/``.rst``/``.txt`` files of the
  standard library and site-packages, and the Python manual's sources where
  Debian's python3.11-doc is installed; kept when ≥ 80 % letters and spaces,
  dedented (``inspect.cleandoc``: GPT-2 has no tokens for runs of spaces, and
  indented docstrings would be an unfair test of it), deduplicated (~50 MB
  here). Technical English, not web text.
- ``zipf``: generated words with Zipf-distributed frequencies over an unbounded
  lexicon (distinct words keep growing with size, as on the web), for the
  training time and memory points beyond the real text we have.

Held-out sets for compression: the ``prose`` val split, and the reference texts
of the real web pages in ``../shared/eval/extraction`` (80 pages, several
languages). GPT-2's own tokenizer is measured on the same texts in the same run.
Anchors measured in the same run on the same text: tiktoken with our ranks (1
and 2 threads) and Hugging Face ``tokenizers`` with our tokenizer.json.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import re
import resource
import shutil
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import (  # noqa: E402
    load_average,
    machine_line,
    print_table,
    run_measured,
)

EVAL_PAGES = ROOT.parent / "shared" / "eval" / "extraction"
MB = 10**6
_TRIPLE = re.compile(r'("""|\'\'\')(.*?)\1', re.S)


# --- text sources ---------------------------------------------------------------------------


def _prose(text: str) -> bool:
    if len(text) < 300:
        return False
    return sum(c.isalpha() or c == " " for c in text) / len(text) > 0.8


def prose_documents():
    """Documentation prose of the installed Python (see the module doc), in a fixed order."""
    paths = sysconfig.get_paths()
    roots = sorted({paths["stdlib"], paths["purelib"]})
    manual = "/usr/share/doc/python3.11/html/_sources"
    if os.path.isdir(manual):
        roots.append(manual)
    seen: set[bytes] = set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    if name.endswith(".py"):
                        with open(path, encoding="utf-8") as handle:
                            parts = [inspect.cleandoc(m.group(2))
                                     for m in _TRIPLE.finditer(handle.read())]
                    elif name.endswith((".md", ".rst")) or (
                            name.endswith(".txt") and "LICENSE" not in name.upper()):
                        with open(path, encoding="utf-8") as handle:
                            parts = [handle.read()]
                    else:
                        continue
                except (OSError, UnicodeDecodeError):
                    continue
                for part in parts:
                    text = part.strip()
                    if not _prose(text):
                        continue
                    digest = hashlib.sha1(text.encode()).digest()
                    if digest not in seen:
                        seen.add(digest)
                        yield {"id": digest.hex()[:16], "text": text}


_SYLLABLES = ("ka to ri ne mo sa lu pe di gor an el is un ber str th ing ed er on al ch qu "
              "ow ay ex ly").split()


def zipf_documents(total_bytes: int, seed: int = 0, words_per_doc: int = 600):
    """Generated documents of Zipf-distributed words (exponent 1.15) over a growing lexicon."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cache: dict[int, str] = {}

    def word(rank: int) -> str:
        x = (rank * 2654435761) % (1 << 32) + rank
        parts = []
        for _ in range(1 + int(np.log2(rank + 1) // 3)):
            parts.append(_SYLLABLES[x % len(_SYLLABLES)])
            x = x // len(_SYLLABLES) or rank + 7
        return "".join(parts)

    written, index = 0, 0
    while written < total_bytes:
        ranks = np.minimum(rng.zipf(1.15, size=words_per_doc), 50_000_000).tolist()
        marks = rng.integers(0, 40, size=words_per_doc).tolist()
        words = []
        for rank, mark in zip(ranks, marks, strict=True):
            w = cache.get(rank)
            if w is None:
                w = cache[rank] = word(rank)
            words.append(w + "." if mark == 0 else w + "," if mark == 1 else w)
        text = " ".join(words)
        written += len(text)
        yield {"id": f"zipf-{seed}-{index}", "text": text}
        index += 1


def ensure_corpus(work: Path, name: str, make) -> Path:
    """Write the documents as shards once; later runs reuse them."""
    from webtext_pipeline.tokenizer.sample import write_shards

    docs = work / name / "docs"
    done = work / name / "DONE"
    if not done.exists():
        shutil.rmtree(work / name, ignore_errors=True)
        started = time.perf_counter()
        write_shards(str(docs), make(), n_shards=4, row_group_rows=2000)
        done.write_text("ok\n")
        print(f"# wrote {name} shards in {time.perf_counter() - started:.0f} s → {docs}")
    return docs


def split_bytes(docs: Path, split: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for path in sorted(docs.glob("*.parquet")):
        table = pq.read_table(path, columns=["text", "split"])
        mask = pc.equal(table.column("split"), split)
        total += pc.sum(pc.binary_length(table.filter(mask).column("text"))).as_py() or 0
    return total


def split_texts(docs: Path, split: str, limit_bytes: int) -> list[str]:
    import pyarrow.parquet as pq

    texts, total = [], 0
    for path in sorted(docs.glob("*.parquet")):
        for row in pq.read_table(path, columns=["text", "split"]).to_pylist():
            if row["split"] == split:
                texts.append(row["text"])
                total += len(row["text"].encode())
                if total >= limit_bytes:
                    return texts
    return texts


def eval_pages() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(EVAL_PAGES.glob("*/*.txt"))]


# --- training: time and memory --------------------------------------------------------------


def child_train(args) -> None:
    """In a child process, so its peak memory is its own."""
    from webtext_pipeline.tokenizer import train_tokenizer

    info = train_tokenizer(args.child_docs, args.child_out, vocab_size=args.vocab_size,
                           max_train_bytes=args.child_cap, force=True)
    print(json.dumps({k: info[k] for k in ("vocab_size", "merges", "sample", "seconds",
                                           "train_seconds")}))


def train_measured(docs: Path, out: Path, cap: int | None, vocab_size: int) -> dict:
    argv = [sys.executable, __file__, "_child-train", "--child-docs", str(docs),
            "--child-out", str(out), "--child-cap", str(cap or 0),
            "--vocab-size", str(vocab_size)]
    measured = run_measured(argv, interval_s=0.05).check()
    info = json.loads(measured.stdout.strip().splitlines()[-1])
    info.update(wall_s=measured.wall_s, cpu_s=measured.cpu_s, peak=measured.peak_tree_rss)
    return info


def section_train(args, work: Path) -> None:
    rows = []
    prose = ensure_corpus(work, "prose", prose_documents)
    prose_train = split_bytes(prose, "train")
    points = [("prose", prose, int(s * MB)) for s in args.sizes if s * MB <= prose_train]
    if all(s * MB > prose_train for s in args.sizes) or max(args.sizes) * MB > prose_train:
        points.append(("prose", prose, None))
    zipf = ensure_corpus(work, "zipf", lambda: zipf_documents(int(max(args.sizes) * MB / 0.88)))
    points += [("zipf", zipf, int(s * MB)) for s in args.sizes]
    for source, docs, cap in points:
        info = train_measured(docs, work / "trained" / f"{source}-{cap}", cap, args.vocab_size)
        sample = info["sample"]["bytes"]
        rows.append([source, f"{sample / MB:.1f}", f"{info['sample']['documents']:,}",
                     f"{info['vocab_size']:,}", f"{info['train_seconds']:.1f}",
                     f"{info['wall_s']:.1f}", f"{info['cpu_s']:.1f}",
                     f"{info['peak'] / (1 << 20):,.0f}",
                     f"{sample / MB / max(info['train_seconds'], 1e-9):.1f}"])
        print(f"  {source} {sample / MB:.1f} MB: {info['wall_s']:.1f} s, "
              f"{info['peak'] / (1 << 20):.0f} MiB", flush=True)
    print_table(f"Training a {args.vocab_size:,}-id byte-level BPE (HF tokenizers "
                f"{_version('tokenizers')}), child process; load {load_average()}",
                ["text", "sample MB", "documents", "vocab", "train s", "wall s", "CPU s",
                 "peak MiB", "MB/s"], rows)


# --- compression ----------------------------------------------------------------------------


def _bytes_per_token(encoder, texts: list[str]) -> float:
    total = sum(len(t.encode()) for t in texts)
    return total / sum(len(encoder.encode(t)) for t in texts)


def section_compression(args, work: Path) -> None:
    from webtext_pipeline.tokenizer import load_encoder

    prose = Path(args.docs) if args.docs else ensure_corpus(work, "prose", prose_documents)
    heldout = split_texts(prose, "val", 2 * MB)
    pages = eval_pages()
    caps = [int(c * MB) for c in args.caps]
    rows = []
    sets = [("held-out " + ("docs" if args.docs else "prose"), heldout),
            ("eval web pages", pages)]
    gpt2 = None
    try:
        gpt2 = load_encoder("gpt2")
    except ValueError as exc:
        print(f"# GPT-2 not available: {exc}")
    gpt2_row = ["GPT-2 (its own, WebText)", "-", "50,257"] + [
        f"{_bytes_per_token(gpt2, texts):.3f}" if gpt2 else "-" for _, texts in sets]
    for cap in [*caps, None]:
        out = work / "trained" / f"compression-{cap}"
        info = train_measured(prose, out, cap, args.vocab_size)
        encoder = load_encoder(str(out))
        rows.append([f"ours, {info['sample']['bytes'] / MB:.1f} MB sample",
                     f"{info['train_seconds']:.1f}", f"{info['vocab_size']:,}"]
                    + [f"{_bytes_per_token(encoder, texts):.3f}" for _, texts in sets])
        print(f"  cap {cap}: {rows[-1]}", flush=True)
    rows.append(gpt2_row)
    sizes = ", ".join(f"{name}: {len(t)} texts, {sum(len(x.encode()) for x in t) / MB:.2f} MB"
                      for name, t in sets)
    print_table(f"Bytes per token (higher is better) against the training sample; {sizes}",
                ["tokenizer", "train s", "vocab"] + [name for name, _ in sets], rows)


# --- encoding throughput --------------------------------------------------------------------


def _cpu_seconds() -> float:
    """CPU of this process (all threads) and of its waited-for children (pool workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _mbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MB / seconds:.2f}"


def section_encode(args, work: Path) -> None:
    import tokenizers

    from webtext_pipeline.tokenizer import load_encoder, tokenize_corpus
    from webtext_pipeline.tokenizer.sample import write_shards

    prose = Path(args.docs) if args.docs else ensure_corpus(work, "prose", prose_documents)
    tokenizer_dir = work / "trained" / "encode-tokenizer"
    if not (tokenizer_dir / "tokenizer.json").exists():
        train_measured(prose, tokenizer_dir, None, args.vocab_size)
    encoder = load_encoder(str(tokenizer_dir))
    texts = split_texts(prose, "train", int(args.encode_mb * MB))
    nbytes = sum(len(t.encode()) for t in texts)
    hf = tokenizers.Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    hf.encode_special_tokens = True
    enc = encoder.tiktoken

    corpus = work / "encode-corpus" / "docs"
    shutil.rmtree(corpus.parent, ignore_errors=True)
    write_shards(str(corpus), ({"id": f"d{i}", "text": t, "split": "train"}
                               for i, t in enumerate(texts)), n_shards=4, row_group_rows=2000)

    def hf_single():
        return [hf.encode(t).ids for t in texts]

    def hf_batch():
        return [e.ids for e in hf.encode_batch(texts)]

    def tk_one():
        return enc.encode_ordinary_batch(texts, num_threads=1)

    def tk_two():
        return enc.encode_ordinary_batch(texts, num_threads=2)

    def ours_one():
        return [encoder.encode_array(t) for t in texts]

    def corpus_run(workers):
        out = work / "encode-corpus" / f"tokens-{workers}"
        return lambda: tokenize_corpus(str(corpus), str(tokenizer_dir), str(out),
                                       workers=workers, force=True)

    cases = [
        ("HF tokenizers, one document at a time", hf_single, "1 thread"),
        ("HF tokenizers, encode_batch", hf_batch, "2 threads (rayon)"),
        ("tiktoken, same ranks", tk_one, "1 thread"),
        ("tiktoken, same ranks, encode_ordinary_batch", tk_two, "2 threads"),
        ("ours: Encoder.encode_array (in memory)", ours_one, "1 process"),
        ("ours: tokenize_corpus, Parquet → train.bin", corpus_run(1), "1 process"),
        ("ours: tokenize_corpus, Parquet → train.bin", corpus_run(2), "2 processes"),
    ]
    results: dict[str, list[tuple[float, float]]] = {}
    outputs: dict[str, object] = {}
    for round_no in range(args.repeats):
        for name, fn, how in cases:
            wall, cpu = time.perf_counter(), _cpu_seconds()
            outputs[name + how] = fn()
            results.setdefault(name + how, []).append(
                (time.perf_counter() - wall, _cpu_seconds() - cpu))
        print(f"  round {round_no + 1} done; load {load_average()}", flush=True)
    startup = []
    for _ in range(args.repeats):  # the fixed cost of a 2-process run: spawn, imports, ranks
        tiny = work / "encode-corpus" / "tiny"
        write_shards(str(tiny), [{"id": "x", "text": "tiny", "split": "train"}] * 64,
                     n_shards=2)
        started = time.perf_counter()
        tokenize_corpus(str(tiny), str(tokenizer_dir), str(tiny.parent / "tiny-tokens"),
                        workers=2, force=True)
        startup.append(time.perf_counter() - started)
    reference = outputs["tiktoken, same ranks1 thread"]
    hf_tokens = outputs["HF tokenizers, one document at a time1 thread"]
    mismatched = sum(a != b for a, b in zip(hf_tokens, reference, strict=True))
    ours = outputs["ours: Encoder.encode_array (in memory)1 process"]
    ours_mismatched = sum(list(a) != b for a, b in zip(ours, reference, strict=True))
    anchor = statistics.median(w for w, _ in results["tiktoken, same ranks1 thread"])
    rows = []
    for name, _, how in cases:
        seconds = statistics.median(w for w, _ in results[name + how])
        cpu = statistics.median(c for _, c in results[name + how])
        rows.append([name, how, f"{seconds:.2f}", _mbps(nbytes, seconds), f"{cpu:.2f}",
                     _mbps(nbytes, cpu), f"{anchor / seconds:.2f}×"])
    print_table(
        f"Encoding {nbytes / MB:.1f} MB ({len(texts):,} documents) with a "
        f"{encoder.vocab_size:,}-id BPE, median of {args.repeats}; HF ≠ tiktoken on "
        f"{mismatched} of {len(texts):,} documents, ours ≠ tiktoken on {ours_mismatched}; "
        f"a 2-process tokenize_corpus has a fixed cost of {statistics.median(startup):.2f} s "
        f"(spawn, imports, ranks; a 64-row corpus); load {load_average()}",
        ["path", "parallelism", "wall s", "MB/s", "CPU s", "MB per CPU-s",
         "vs tiktoken 1 thread (wall)"], rows)


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=("all", "train", "compression", "encode",
                                            "_child-train"))
    parser.add_argument("--work", default="/tmp/webtext-bench-tokenizer")
    parser.add_argument("--docs", help="a built corpus (OUT/docs) for compression and encode")
    parser.add_argument("--sizes", type=float, nargs="+", default=[10, 50, 200],
                        help="training sample sizes in MB")
    parser.add_argument("--caps", type=float, nargs="+", default=[1, 2, 5, 10, 20],
                        help="compression: training caps in MB (then the whole train split)")
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--encode-mb", type=float, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child-docs")
    parser.add_argument("--child-out")
    parser.add_argument("--child-cap", type=int)
    args = parser.parse_args()
    if args.section == "_child-train":
        args.child_cap = args.child_cap or None
        child_train(args)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {machine_line()}; load {load_average()}")
    print(f"# tokenizers {_version('tokenizers')}, tiktoken {_version('tiktoken')}, "
          f"transformers {_version('transformers')}")
    if args.section in ("all", "train"):
        section_train(args, work)
    if args.section in ("all", "compression"):
        section_compression(args, work)
    if args.section in ("all", "encode"):
        section_encode(args, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
