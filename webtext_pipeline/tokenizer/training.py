"""Training the byte-level BPE on the corpus's train split: a capped, deterministic sample.

The sample. Each train document gets a key, the first 8 bytes of
``sha1(f"{seed}:{id}")``; the sample is the documents with the smallest keys
whose text adds up to at most ``max_train_bytes``. It is found in two streamed
passes and fixed memory: the first adds each document's UTF-8 length into one
of 2^20 buckets by the top 20 bits of its key (8 MiB of counters); the cut is
the last bucket that keeps the total under the cap; the second pass feeds the
texts of the documents below the cut to the trainer. So the sample depends on
the seed, the ids and the cap, never on shard order or worker count; a larger
cap takes a superset; and it lands within one bucket (≈ 1e-6 of the train
split) under the cap.

The trainer. Hugging Face ``tokenizers``' BPE with GPT-2's byte-level
pre-tokenization and splitting regex (``ByteLevel(add_prefix_space=False,
use_regex=True)``), all 256 bytes as the initial alphabet, no special tokens
while training, ``min_frequency`` 2 (a pair seen once is a memorized fragment
of one document). ``<|endoftext|>`` is added afterwards, so it is the last id
as in GPT-2 (``ByteLevelBPETokenizer``'s helper would put it at 0). When the
sample has fewer distinct mergeable pairs than the vocabulary asks for, the
trainer stops early: the vocabulary is smaller than requested, and
``vocab_size`` / ``vocab_size_requested`` in ``webtext_tokenizer.json`` say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator

import numpy as np

from webtext_pipeline.tokenizer.bytelevel import (
    DEFAULT_MAX_TRAIN_BYTES,
    DEFAULT_VOCAB_SIZE,
    EOT,
    TokenizerError,
    token_bytes,
)
from webtext_pipeline.tokenizer.docs import (
    Shard,
    byte_lengths,
    corpus_fingerprint,
    iter_batches,
    list_shards,
)
from webtext_pipeline.tokenizer.encoder import (
    HF_FILES,
    INFO_FILE,
    RANKS_FILE,
    write_tokenizer_dir,
)

DEFAULT_MIN_FREQUENCY = 2
BUCKET_BITS = 20
HELDOUT_BYTES = 1 << 20  # held-out text for the tokenizers-vs-tiktoken agreement check

# Varied text that every export is checked on (besides held-out documents): scripts,
# emoji, combining marks, digits, contractions, runs of spaces, tabs and newlines, code.
PROBE_TEXT = (
    "Hello, world! It's 2017: the council's plan costs $1,250,000 (≈ €1.1m). "
    "They'll say it's fine; we'd disagree. DON'T SHOUT. 3.14159 × 2 = 6.28318\n\n"
    "Naïve café résumé — «quotes» and “curly quotes”, ‘single’ too… "
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी, 中文字符, 日本語のテキスト, 한국어 문장.\n"
    "Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🇬🇧 flags; combining: e\u0301 a\u0308\u0323 Z\u0351\u0352\u0357.\n"
    "    indented line\twith\ttabs   and    runs of     spaces   \n"
    "def f(x):\n    return {'a': [1, 2, 3]}  # comment\n"
    "https://example.com/path?q=1&r=two#frag <b>bold</b> user@example.org\n"
    "\x00\x01\x7f control characters\r\n and trailing spaces    "
)


def doc_key(seed: int, doc_id: str) -> int:
    """A document's 64-bit sample key (smaller keys are sampled first)."""
    return int.from_bytes(hashlib.sha1(f"{seed}:{doc_id}".encode()).digest()[:8], "big")


def _train_rows(shards: list[Shard]) -> Iterator[tuple[list, list, list, object]]:
    """(ids, texts-or-None, lengths, batch) of the train documents, batch by batch."""
    for shard in shards:
        for batch in iter_batches(shard.path):
            splits = batch.column("split").to_pylist()
            ids = batch.column("id").to_pylist()
            lengths = byte_lengths(batch)
            keep = [i for i, split in enumerate(splits) if split == "train"]
            yield [ids[i] for i in keep], keep, [lengths[i] or 0 for i in keep], batch


def plan_sample(shards: list[Shard], max_train_bytes: int | None, seed: int) -> dict:
    """Pass one: the bucket cut that keeps the sample under the cap."""
    buckets = np.zeros(1 << BUCKET_BITS, dtype=np.int64)
    docs = 0
    shift = 64 - BUCKET_BITS
    for ids, _, lengths, _ in _train_rows(shards):
        if not ids:
            continue
        index = np.fromiter((doc_key(seed, doc_id) >> shift for doc_id in ids), dtype=np.int64,
                            count=len(ids))
        np.add.at(buckets, index, np.asarray(lengths, dtype=np.int64))
        docs += len(ids)
    total = int(buckets.sum())
    if max_train_bytes is None or total <= max_train_bytes:
        cut, selected = len(buckets), total
    else:
        cumulative = np.cumsum(buckets)
        cut = int(np.searchsorted(cumulative, max_train_bytes, side="right"))
        selected = int(cumulative[cut - 1]) if cut else 0
    return {"train_documents": docs, "train_bytes": total, "cut": cut,
            "sample_bytes": selected, "buckets": len(buckets)}


def sample_texts(shards: list[Shard], cut: int, seed: int, counter: dict | None = None
                 ) -> Iterator[str]:
    """Pass two: the texts of the sampled train documents, in shard order."""
    shift = 64 - BUCKET_BITS
    for ids, keep, _, batch in _train_rows(shards):
        if not ids:
            continue
        texts = batch.column("text")
        for doc_id, row in zip(ids, keep, strict=True):
            if doc_key(seed, doc_id) >> shift < cut:
                text = texts[row].as_py() or ""
                if counter is not None:
                    counter["documents"] = counter.get("documents", 0) + 1
                yield text


def heldout_texts(shards: list[Shard], limit_bytes: int = HELDOUT_BYTES) -> list[str]:
    """Validation documents in shard order up to ``limit_bytes`` (never trained on)."""
    texts, total = [], 0
    for shard in shards:
        for batch in iter_batches(shard.path):
            for split, text in zip(batch.column("split").to_pylist(),
                                   batch.column("text").to_pylist(), strict=True):
                if split == "val" and text:
                    texts.append(text)
                    total += len(text.encode("utf-8"))
                    if total >= limit_bytes:
                        return texts
    return texts


def _trained_vocab(tokenizer) -> tuple[dict[bytes, int], list[tuple[str, str]]]:
    model = json.loads(tokenizer.to_str())["model"]
    ranks = {token_bytes(token): index for token, index in model["vocab"].items()}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return ranks, merges


def _reusable(out_dir: str, inputs: dict) -> dict | None:
    path = os.path.join(out_dir, INFO_FILE)
    if not all(os.path.isfile(os.path.join(out_dir, n)) for n in (*HF_FILES, RANKS_FILE)):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        return None
    return info if info.get("inputs") == inputs else None


def train_tokenizer(docs_dir: str, out_dir: str, vocab_size: int = DEFAULT_VOCAB_SIZE,
                    max_train_bytes: int | None = DEFAULT_MAX_TRAIN_BYTES, seed: int = 0,
                    min_frequency: int = DEFAULT_MIN_FREQUENCY, force: bool = False,
                    log: Callable[[str], None] | None = None) -> dict:
    """Train on the train split of ``docs_dir``, write every format to ``out_dir``.

    Returns the contents of ``webtext_tokenizer.json`` plus ``seconds`` and
    ``reused`` (true when ``out_dir`` already held this very tokenizer: same
    shards, options and library version; nothing was trained).
    """
    import tokenizers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if vocab_size < 257:
        raise TokenizerError(f"--vocab-size {vocab_size}: at least 257 (256 bytes + {EOT})")
    if vocab_size > 1 << 32:
        raise TokenizerError(f"--vocab-size {vocab_size}: at most 2^32")
    if max_train_bytes is not None and max_train_bytes <= 0:
        raise TokenizerError(f"--max-train-bytes {max_train_bytes}: must be positive")
    say = log or (lambda line: None)
    started = time.perf_counter()
    shards = list_shards(docs_dir)
    inputs = {"shards": corpus_fingerprint(shards), "vocab_size": vocab_size,
              "max_train_bytes": max_train_bytes, "seed": seed, "min_frequency": min_frequency,
              "tokenizers": tokenizers.__version__}
    if not force and (info := _reusable(out_dir, inputs)):
        say(f"tokenizer: reused {out_dir} (same shards and options)")
        return {**info, "reused": True, "seconds": time.perf_counter() - started}

    plan = plan_sample(shards, max_train_bytes, seed)
    if not plan["train_documents"]:
        raise TokenizerError(f"--docs {docs_dir}: no document has split 'train'")
    say(f"tokenizer: sampling {plan['sample_bytes']:,} of {plan['train_bytes']:,} train bytes "
        f"({plan['train_documents']:,} train documents, seed {seed})")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # <|endoftext|> is added after training, as the last id
        min_frequency=min_frequency,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    counter: dict = {}
    train_started = time.perf_counter()
    tokenizer.train_from_iterator(sample_texts(shards, plan["cut"], seed, counter), trainer)
    train_seconds = time.perf_counter() - train_started
    ranks, merges = _trained_vocab(tokenizer)
    eot_id = len(ranks)
    actual = eot_id + 1
    if actual < vocab_size:
        say(f"tokenizer: the sample supports only {actual:,} ids (asked for {vocab_size:,}): "
            f"no pair left that occurs {min_frequency}+ times; a larger corpus or "
            "--max-train-bytes gives more")
    info = {
        "name": "webtext-bpe",
        "kind": "trained",
        "vocab_size_requested": vocab_size,
        "merges": len(merges),
        "pre_tokenizer": "GPT-2 byte-level, GPT-2 regex",
        "sample": {
            "seed": seed,
            "max_train_bytes": max_train_bytes,
            "documents": counter.get("documents", 0),
            "bytes": plan["sample_bytes"],
            "train_documents": plan["train_documents"],
            "train_bytes": plan["train_bytes"],
            "fraction": round(plan["sample_bytes"] / max(plan["train_bytes"], 1), 6),
        },
        "min_frequency": min_frequency,
        "inputs": inputs,
    }
    info = write_tokenizer_dir(out_dir, ranks, merges, eot_id, info,
                               check_texts=[PROBE_TEXT, *heldout_texts(shards)])
    check = info["agreement"]
    if check["mismatched"]:
        say(f"tokenizer: warning: tokenizer.json and tiktoken differ on {check['mismatched']} of "
            f"{check['documents']} held-out texts")
    say(f"tokenizer: {actual:,} ids ({len(merges):,} merges) from {counter.get('documents', 0):,} "
        f"documents, {plan['sample_bytes'] / 1e6:,.1f} MB in {train_seconds:.1f} s → {out_dir}")
    return {**info, "reused": False, "seconds": time.perf_counter() - started,
            "train_seconds": train_seconds}
