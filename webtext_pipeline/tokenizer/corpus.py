"""Tokenizing the corpus into nanoGPT's token files, in parallel over pieces of the shards.

``OUT/tokens/`` gets:

- ``train.bin``, ``val.bin``: flat arrays of ``uint16`` (the vocabulary fits in 16
  bits) or ``uint32``; each document's tokens followed by ``<|endoftext|>``, documents
  in shard order, then row order: what nanoGPT's ``prepare.py`` writes and its
  trainer reads with ``np.memmap``.
- ``meta.json``: ``vocab_size``, ``dtype``, ``eot_id``, token/document/byte counts per
  split, the tokenizer's name and checksum, and the input shards' fingerprint.
  Written last, so its presence means the folder is complete.
- ``doc_tokens.parquet``: one row per document (``id``, ``split``, ``shard``,
  ``row``, ``n_bytes``, ``n_tokens``, ``offset``): ``tokens[offset:offset +
  n_tokens]`` of the split's file is that document, its separator excluded.

The work is cut into tasks of at most ``MAX_TASK_ROWS`` rows of one row group
(more, smaller tasks when the corpus is small, so every worker gets some); a
pool of ``workers`` processes encodes them with tiktoken and writes one part
file per task and split; the parent appends the parts in task order. The output
is byte-identical whatever the worker count. Memory: one task's text and tokens
per worker.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from webtext_pipeline.tokenizer.bytelevel import TokenizerError, write_json
from webtext_pipeline.tokenizer.docs import (
    SPLITS,
    Shard,
    corpus_fingerprint,
    iter_batches,
    list_shards,
)
from webtext_pipeline.tokenizer.encoder import Encoder, load_encoder

MAX_TASK_ROWS = 4096
MIN_TASK_ROWS = 64
DOC_GROUP_ROWS = 1 << 16
PROGRESS_S = 10.0  # seconds between progress lines
DOC_TOKENS_FILE = "doc_tokens.parquet"
DOC_TOKENS_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("shard", pa.string(), nullable=False),
    pa.field("row", pa.int64(), nullable=False),
    pa.field("n_bytes", pa.int64(), nullable=False),
    pa.field("n_tokens", pa.int64(), nullable=False),
    pa.field("offset", pa.int64(), nullable=False),
])
NP_DTYPES = {"uint16": np.uint16, "uint32": np.uint32}

_ENCODER: Encoder | None = None  # one per worker process


def plan_tasks(shards: list[Shard], workers: int) -> list[tuple]:
    """(task, shard name, path, row group, first row, end row, the group's first shard row)."""
    total = sum(shard.rows for shard in shards)
    per_task = max(MIN_TASK_ROWS, min(MAX_TASK_ROWS, math.ceil(total / max(1, 4 * workers))))
    tasks = []
    for shard in shards:
        shard_row = 0
        for group, rows in enumerate(shard.row_groups):
            for start in range(0, rows, per_task):
                end = min(rows, start + per_task)
                tasks.append((len(tasks), shard.name, shard.path, group, start, end,
                              shard_row))
            shard_row += rows
    return tasks


def _init_worker(spec: str) -> None:
    global _ENCODER
    _ENCODER = load_encoder(spec)


def _encode_task(task: tuple, parts_dir: str, batch_rows: int = 512) -> dict:
    """Encode one task's documents; write ``parts_dir/<task>.<split>.bin``; return the rows."""
    number, shard_name, path, group, start, end, group_row = task
    encoder = _ENCODER
    assert encoder is not None, "worker not initialised"
    eot = np.array([encoder.eot_id], dtype=np.uint32)
    pieces: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    rows: dict[str, list] = {k: [] for k in ("id", "split", "row", "n_bytes", "n_tokens")}
    skipped = 0
    seen = 0
    for batch in iter_batches(path, batch_rows=batch_rows, row_groups=[group]):
        first = seen  # the batch's first row, counted in the row group
        lo, hi = max(start - seen, 0), min(end - seen, batch.num_rows)
        seen += batch.num_rows
        if hi <= lo:
            if seen >= end:
                break
            continue
        part = batch.slice(lo, hi - lo)
        ids = part.column("id").to_pylist()
        texts = part.column("text").to_pylist()
        splits = part.column("split").to_pylist()
        for offset, (doc_id, text, split) in enumerate(zip(ids, texts, splits, strict=True)):
            if split not in pieces:
                skipped += 1
                continue
            tokens = encoder.encode_array(text or "")
            pieces[split].append(tokens)
            pieces[split].append(eot)
            rows["id"].append(doc_id)
            rows["split"].append(split)
            rows["row"].append(group_row + first + lo + offset)
            rows["n_bytes"].append(len(text.encode("utf-8")) if text else 0)
            rows["n_tokens"].append(len(tokens))
        if seen >= end:
            break
    dtype = NP_DTYPES[encoder.dtype]
    parts = {}
    for split, arrays in pieces.items():
        if not arrays:
            continue
        data = np.concatenate(arrays).astype(dtype, copy=False)
        part_path = os.path.join(parts_dir, f"{number:07d}.{split}.bin")
        data.tofile(part_path)
        parts[split] = (part_path, len(data))
    return {"task": number, "shard": shard_name, "parts": parts, "rows": rows,
            "skipped": skipped}


def _encode_task_star(args: tuple) -> dict:
    return _encode_task(*args)


def _reusable(out_dir: str, inputs: dict) -> dict | None:
    try:
        with open(os.path.join(out_dir, "meta.json"), encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    if meta.get("inputs") != inputs:
        return None
    itemsize = np.dtype(NP_DTYPES[meta["dtype"]]).itemsize
    for split in SPLITS:
        path = os.path.join(out_dir, f"{split}.bin")
        if not os.path.isfile(path) or os.path.getsize(path) != meta[split]["tokens"] * itemsize:
            return None
    return meta if os.path.isfile(os.path.join(out_dir, DOC_TOKENS_FILE)) else None


def tokenize_corpus(docs_dir: str, tokenizer: str, out_dir: str, workers: int | None = None,
                    force: bool = False, log: Callable[[str], None] | None = None) -> dict:
    """Tokenize every document of ``docs_dir`` into ``out_dir`` (see the module doc).

    ``tokenizer`` is a tokenizer folder or ``"gpt2"``. Returns ``meta.json``'s contents
    plus ``seconds``, ``mb_per_s`` (UTF-8 text bytes) and ``reused``.
    """
    say = log or (lambda line: None)
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise TokenizerError(f"--workers {workers}: must be at least 1")
    started = time.perf_counter()
    spec = tokenizer if tokenizer == "gpt2" else os.path.abspath(tokenizer)
    encoder = load_encoder(spec)
    shards = list_shards(docs_dir)
    inputs = {"shards": corpus_fingerprint(shards), "tokenizer_checksum": encoder.checksum}
    if not force and (meta := _reusable(out_dir, inputs)):
        say(f"tokenize: reused {out_dir} (same shards and tokenizer)")
        return {**meta, "reused": True, "seconds": time.perf_counter() - started}

    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, "meta.json")
    if os.path.exists(meta_path):
        os.remove(meta_path)  # the folder is incomplete until the new meta.json lands
    parts_dir = os.path.join(out_dir, f".parts-{os.getpid()}")
    os.makedirs(parts_dir, exist_ok=True)
    tasks = plan_tasks(shards, workers)
    say(f"tokenize: {sum(s.rows for s in shards):,} documents in {len(shards)} shard(s), "
        f"{len(tasks)} task(s) on {workers} worker(s), tokenizer {encoder.name} "
        f"({encoder.vocab_size:,} ids, {encoder.dtype})")
    totals = {split: {"tokens": 0, "documents": 0, "bytes": 0} for split in SPLITS}
    skipped = 0
    doc_tmp = os.path.join(out_dir, f"{DOC_TOKENS_FILE}.tmp")
    try:
        with ExitStack() as stack:
            outputs = {split: stack.enter_context(
                open(os.path.join(out_dir, f"{split}.bin.tmp"), "wb")) for split in SPLITS}
            writer = stack.enter_context(_DocRows(doc_tmp))
            last_line = time.perf_counter()
            for number, result in enumerate(_run(tasks, spec, encoder, parts_dir, workers)):
                skipped += result["skipped"]
                _append(result, outputs, writer, totals)
                if time.perf_counter() - last_line > PROGRESS_S and number < len(tasks) - 1:
                    last_line = time.perf_counter()
                    done = sum(t["bytes"] for t in totals.values())
                    say(f"tokenize: {number + 1}/{len(tasks)} tasks, {done / 1e6:,.1f} MB, "
                        f"{done / 1e6 / max(time.perf_counter() - started, 1e-9):.1f} MB/s")
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    for split in SPLITS:
        os.replace(os.path.join(out_dir, f"{split}.bin.tmp"), os.path.join(out_dir, f"{split}.bin"))
    os.replace(doc_tmp, os.path.join(out_dir, DOC_TOKENS_FILE))
    all_tokens = sum(t["tokens"] - t["documents"] for t in totals.values())
    all_bytes = sum(t["bytes"] for t in totals.values())
    meta = {
        "vocab_size": encoder.vocab_size,
        "dtype": encoder.dtype,
        "eot_id": encoder.eot_id,
        "layout": "nanoGPT: each document's tokens, then <|endoftext|>; shard and row order",
        "tokenizer": {"name": encoder.name, "checksum": encoder.checksum,
                      "source": "gpt2" if spec == "gpt2" else os.path.basename(spec)},
        **{split: totals[split] for split in SPLITS},
        "documents": sum(t["documents"] for t in totals.values()),
        "tokens": sum(t["tokens"] for t in totals.values()),
        "skipped_other_split": skipped,
        "bytes_per_token": round(all_bytes / all_tokens, 4) if all_tokens else None,
        "doc_tokens": DOC_TOKENS_FILE,
        "inputs": inputs,
    }
    write_json(meta_path, meta)
    seconds = time.perf_counter() - started
    for split in SPLITS:
        if not totals[split]["documents"]:
            say(f"tokenize: warning: no {split} documents; {split}.bin is empty")
    say(f"tokenize: {meta['tokens']:,} tokens from {meta['documents']:,} documents "
        f"({all_bytes / 1e6:,.1f} MB, {meta['bytes_per_token'] or 0:.2f} bytes/token) in "
        f"{seconds:.1f} s → {out_dir}")
    return {**meta, "reused": False, "seconds": seconds,
            "mb_per_s": all_bytes / 1e6 / seconds if seconds else 0.0, "workers": workers}


def _append(result: dict, outputs: dict, writer: _DocRows, totals: dict) -> None:
    """Append one task's part files and document rows (offsets continue the splits)."""
    rows = result["rows"]
    offsets, local = [], {split: 0 for split in SPLITS}
    for split, n_tokens in zip(rows["split"], rows["n_tokens"], strict=True):
        offsets.append(totals[split]["tokens"] + local[split])
        local[split] += n_tokens + 1
    for split in SPLITS:
        if split in result["parts"]:
            part_path, n = result["parts"][split]
            if n != local[split]:
                raise RuntimeError(f"task {result['task']}: {n} tokens written, "
                                   f"{local[split]} counted")
            with open(part_path, "rb") as part:
                shutil.copyfileobj(part, outputs[split], 1 << 22)
            os.remove(part_path)
        totals[split]["tokens"] += local[split]
    for split, n_bytes in zip(rows["split"], rows["n_bytes"], strict=True):
        totals[split]["documents"] += 1
        totals[split]["bytes"] += n_bytes
    writer.add({"id": rows["id"], "split": rows["split"],
                "shard": [result["shard"]] * len(rows["id"]), "row": rows["row"],
                "n_bytes": rows["n_bytes"], "n_tokens": rows["n_tokens"], "offset": offsets})


class _DocRows:
    """doc_tokens.parquet written in row groups of a fixed size, so the file is the same
    whatever the tasks were."""

    def __init__(self, path: str, group_rows: int = DOC_GROUP_ROWS) -> None:
        self.writer = pq.ParquetWriter(path, DOC_TOKENS_SCHEMA)
        self.group_rows = group_rows
        self.buffer: dict[str, list] = {name: [] for name in DOC_TOKENS_SCHEMA.names}

    def add(self, columns: dict[str, list]) -> None:
        for name, values in columns.items():
            self.buffer[name].extend(values)
        while len(self.buffer["id"]) >= self.group_rows:
            self._flush(self.group_rows)

    def _flush(self, n: int) -> None:
        head = {name: values[:n] for name, values in self.buffer.items()}
        self.buffer = {name: values[n:] for name, values in self.buffer.items()}
        self.writer.write_table(pa.table(head, schema=DOC_TOKENS_SCHEMA),
                                row_group_size=self.group_rows)

    def __enter__(self) -> _DocRows:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None and self.buffer["id"]:
            self._flush(len(self.buffer["id"]))
        self.writer.close()


def _run(tasks: list[tuple], spec: str, encoder: Encoder, parts_dir: str, workers: int):
    """Task results in task order: in this process for one worker, else a spawned pool."""
    if workers == 1 or len(tasks) <= 1:
        global _ENCODER
        _ENCODER = encoder
        for task in tasks:
            yield _encode_task(task, parts_dir)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process with Arrow threads
    with context.Pool(min(workers, len(tasks)), initializer=_init_worker,
                      initargs=(spec,)) as pool:
        yield from pool.imap(_encode_task_star, [(task, parts_dir) for task in tasks])
