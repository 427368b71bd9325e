"""The token files (nanoGPT layout) and the windows the trainer reads from them.

``TOKENS/meta.json`` holds at least ``vocab_size``, ``dtype`` (``uint16`` or
``uint32``) and ``eot_id``; ``train.bin`` and ``val.bin`` are flat arrays of that
dtype with ``<|endoftext|>`` between documents. Files are memory-mapped, never
read whole. Windows are drawn from a generator seeded by ``(seed, step,
micro_step)``, so a batch depends only on where the run is, not on what ran
before it: a resumed run reads exactly the batches an uninterrupted one would.

numpy only (no torch), so the CLI can check inputs before importing torch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

import numpy as np

DTYPES = {"uint16": np.uint16, "uint32": np.uint32}
SPLITS = ("train", "val")
_EVAL_STREAM = 1 << 40  # generator stream for the fixed evaluation windows


class TokenFilesError(ValueError):
    """The token directory is missing something or is inconsistent (one line, names the file)."""


@dataclass(frozen=True)
class TokenFiles:
    """A checked token directory."""

    directory: str
    vocab_size: int
    dtype: str
    eot_id: int
    meta: dict

    @classmethod
    def open(cls, directory: str) -> TokenFiles:
        meta_path = os.path.join(directory, "meta.json")
        if not os.path.isdir(directory):
            raise TokenFilesError(f"{directory}: no such token directory")
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
        except FileNotFoundError:
            raise TokenFilesError(f"{meta_path}: missing (expected vocab_size, dtype, eot_id)") \
                from None
        except ValueError as exc:
            raise TokenFilesError(f"{meta_path}: not JSON ({exc})") from None
        missing = [k for k in ("vocab_size", "dtype", "eot_id") if k not in meta]
        if missing:
            raise TokenFilesError(f"{meta_path}: missing {', '.join(missing)}")
        dtype = meta["dtype"]
        if dtype not in DTYPES:
            raise TokenFilesError(f"{meta_path}: dtype {dtype!r} is not uint16 or uint32")
        vocab = int(meta["vocab_size"])
        if vocab < 2 or (dtype == "uint16" and vocab > 1 << 16):
            raise TokenFilesError(f"{meta_path}: vocab_size {vocab} does not fit dtype {dtype}")
        eot = int(meta["eot_id"])
        if not 0 <= eot < vocab:
            raise TokenFilesError(f"{meta_path}: eot_id {eot} outside the vocabulary ({vocab})")
        files = cls(directory, vocab, dtype, eot, meta)
        itemsize = np.dtype(DTYPES[dtype]).itemsize
        for split in SPLITS:
            path = files.path(split)
            if not os.path.isfile(path):
                raise TokenFilesError(f"{path}: missing")
            size = os.path.getsize(path)
            if size % itemsize:
                raise TokenFilesError(f"{path}: {size} bytes is not a whole number of {dtype}")
            if size == 0:
                raise TokenFilesError(f"{path}: empty")
        return files

    def path(self, split: str) -> str:
        return os.path.join(self.directory, f"{split}.bin")

    def tokens(self, split: str) -> np.memmap:
        """The split as a read-only memmap (cheap; reopen per batch, as nanoGPT does)."""
        return np.memmap(self.path(split), dtype=DTYPES[self.dtype], mode="r")

    def n_tokens(self, split: str) -> int:
        return os.path.getsize(self.path(split)) // np.dtype(DTYPES[self.dtype]).itemsize

    def fingerprint(self, sample_bytes: int = 1 << 20) -> dict:
        """What a checkpoint must have been trained on: meta, sizes, and a hash of each
        file's first and last MiB (cheap even for tens of GB)."""
        result = {"vocab_size": self.vocab_size, "dtype": self.dtype, "eot_id": self.eot_id}
        for split in SPLITS:
            path = self.path(split)
            size = os.path.getsize(path)
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                digest.update(handle.read(sample_bytes))
                handle.seek(max(0, size - sample_bytes))
                digest.update(handle.read(sample_bytes))
            result[split] = {"tokens": self.n_tokens(split), "sha256_ends": digest.hexdigest()}
        return result

    def check_block(self, block_size: int) -> None:
        """Both splits must hold at least one window of block_size + 1 tokens."""
        for split in SPLITS:
            n = self.n_tokens(split)
            if n < block_size + 1:
                raise TokenFilesError(
                    f"{self.path(split)}: {n} tokens, fewer than one window of "
                    f"block_size + 1 = {block_size + 1}"
                )

    def check_ids(self, split: str, chunk: int = 1 << 24) -> None:
        """Every id below vocab_size (a streaming max over the memmap)."""
        data = self.tokens(split)
        for start in range(0, len(data), chunk):
            top = int(data[start:start + chunk].max())
            if top >= self.vocab_size:
                raise TokenFilesError(
                    f"{self.path(split)}: token id {top} ≥ vocab_size {self.vocab_size}"
                )


def window_starts(n_tokens: int, block_size: int, count: int, seed: int, step: int,
                  micro_step: int = 0) -> np.ndarray:
    """``count`` window starts in [0, n_tokens - block_size - 1], fixed by (seed, step, micro)."""
    rng = np.random.default_rng([seed, step, micro_step])
    return rng.integers(0, n_tokens - block_size, size=count, dtype=np.int64)


def gather_windows(tokens: np.ndarray, starts: np.ndarray, block_size: int) -> np.ndarray:
    """(len(starts), block_size + 1) int64 array: inputs are [:, :-1], targets [:, 1:]."""
    index = starts[:, None] + np.arange(block_size + 1, dtype=np.int64)[None, :]
    return np.asarray(tokens[index], dtype=np.int64)


def train_batch(files: TokenFiles, batch_size: int, block_size: int, seed: int, step: int,
                micro_step: int) -> np.ndarray:
    tokens = files.tokens("train")
    starts = window_starts(len(tokens), block_size, batch_size, seed, step, micro_step)
    return gather_windows(tokens, starts, block_size)


def eval_batches(files: TokenFiles, batch_size: int, block_size: int, iters: int,
                 seed: int, split: str = "val") -> list[np.ndarray]:
    """The same ``iters`` random batches at every evaluation, so losses compare across steps."""
    tokens = files.tokens(split)
    return [
        gather_windows(tokens, window_starts(len(tokens), block_size, batch_size, seed,
                                             _EVAL_STREAM, i), block_size)
        for i in range(iters)
    ]


def sequential_windows(tokens: np.ndarray, block_size: int, max_tokens: int | None = None
                       ) -> tuple[np.ndarray, int]:
    """Non-overlapping windows covering the split from its start (the final validation pass).

    Returns (starts, n_windows); each window scores block_size targets. A split
    shorter than a window yields no windows.
    """
    usable = len(tokens) - 1
    if max_tokens is not None:
        usable = min(usable, max_tokens)
    n = usable // block_size
    return np.arange(n, dtype=np.int64) * block_size, n


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Plug-in entropy (nats/token) of the tokens' own frequency distribution.

    This is the loss of the best context-free model fitted *to these very tokens*,
    so it is a conservative baseline (the plug-in estimate is biased low).
    """
    counts = np.bincount(np.asarray(tokens, dtype=np.int64), minlength=vocab_size)
    counts = counts[counts > 0].astype(np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def unigram_cross_entropy(train_tokens: np.ndarray, val_tokens: np.ndarray, vocab_size: int,
                          chunk: int = 1 << 24) -> float:
    """Cross-entropy (nats/token) of ``val_tokens`` under the add-one-smoothed train unigram."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(train_tokens), chunk):
        part = np.asarray(train_tokens[start:start + chunk], dtype=np.int64)
        counts += np.bincount(part, minlength=vocab_size)
    logp = np.log(counts + 1.0) - math.log(counts.sum() + vocab_size)
    val_counts = np.bincount(np.asarray(val_tokens, dtype=np.int64), minlength=vocab_size)
    return float(-(val_counts * logp).sum() / val_counts.sum())


def write_tokens(directory: str, train: np.ndarray, val: np.ndarray, vocab_size: int,
                 eot_id: int, **extra) -> TokenFiles:
    """Write a token directory (the tokenizer stage's job; used by tests and benchmarks)."""
    dtype = "uint16" if vocab_size <= 1 << 16 else "uint32"
    os.makedirs(directory, exist_ok=True)
    for split, data in (("train", train), ("val", val)):
        np.asarray(data, dtype=DTYPES[dtype]).tofile(os.path.join(directory, f"{split}.bin"))
    meta = {"vocab_size": int(vocab_size), "dtype": dtype, "eot_id": int(eot_id), **extra}
    with open(os.path.join(directory, "meta.json"), "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2)
    return TokenFiles.open(directory)
