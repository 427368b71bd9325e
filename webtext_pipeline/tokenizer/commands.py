"""Arguments and runners for ``webtext tokenizer train``, ``webtext tokenize`` and the build.

``--out`` is the build folder, as for every command: the tokenizer goes to
``OUT/tokenizer``, the token files to ``OUT/tokens``, and ``--docs`` defaults to
``OUT/docs``. Nothing heavy is imported until a command runs. Bad options and
inputs raise ``TokenizerError`` (a ValueError) before any work starts; the CLI
prints them as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from collections.abc import Callable

from webtext_pipeline.argtypes import positive_int
from webtext_pipeline.tokenizer.bytelevel import (
    DEFAULT_MAX_TRAIN_BYTES,
    DEFAULT_VOCAB_SIZE,
    TokenizerError,
)

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20,
          "gib": 1 << 30, "tib": 1 << 40}


def byte_size(text: str) -> int | None:
    """'500MB', '2GiB', '1e9', '123' → bytes; 'all' or 'none' → None (no cap)."""
    if text.strip().lower() in ("all", "none", "0"):
        return None
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500MB, 2GiB, 1e9, all)")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _add_training_options(group, seed_flag: str = "--seed") -> None:
    group.add_argument("--vocab-size", type=positive_int, default=DEFAULT_VOCAB_SIZE,
                       metavar="N", help="ids including <|endoftext|> (default 50257, GPT-2's); "
                       "a small corpus may support fewer, and the files say how many")
    group.add_argument("--max-train-bytes", type=byte_size, default=DEFAULT_MAX_TRAIN_BYTES,
                       metavar="SIZE", help="cap on the training sample, e.g. 500MB, 2GiB or "
                       "all (default 256MiB)")
    group.add_argument(seed_flag, type=int, default=0, dest="tokenizer_seed", metavar="N",
                       help="sample seed (default 0)")
    group.add_argument("--min-frequency", type=positive_int, default=2, metavar="N",
                       help="a merge needs a pair seen at least N times (default 2)")


def add_tokenizer_train_options(parser: argparse.ArgumentParser) -> None:
    """``webtext tokenizer train`` (the CLI adds ``--out``)."""
    group = parser.add_argument_group("tokenizer training")
    group.add_argument("--docs", metavar="DIR", help="corpus shards; default OUT/docs")
    _add_training_options(group)
    group.add_argument("--force", action="store_true",
                       help="train again even if OUT/tokenizer was made from the same input")


def add_tokenize_options(parser: argparse.ArgumentParser) -> None:
    """``webtext tokenize`` (the CLI adds ``--out``)."""
    group = parser.add_argument_group("tokenize")
    group.add_argument("--docs", metavar="DIR", help="corpus shards; default OUT/docs")
    group.add_argument("--tokenizer", metavar="DIR|gpt2",
                       help="a tokenizer folder, or gpt2 for GPT-2's own (nanoGPT's "
                       "OpenWebText tokens); default OUT/tokenizer")
    group.add_argument("--workers", type=positive_int, metavar="N",
                       help="processes (default: one per core)")
    group.add_argument("--force", action="store_true",
                       help="tokenize again even if OUT/tokens was made from the same input")


def add_build_tokenizer_options(parser: argparse.ArgumentParser) -> None:
    """The tokenizer stage's options on ``webtext build`` (``--tokenizer-seed``, not ``--seed``,
    which the train stage uses)."""
    group = parser.add_argument_group("tokenizer stage")
    group.add_argument("--tokenizer", choices=("train", "gpt2"), default="train",
                       help="train a byte-level BPE on the corpus (default), or use GPT-2's")
    _add_training_options(group, seed_flag="--tokenizer-seed")
    group.add_argument("--tokenize-workers", type=positive_int, metavar="N",
                       help="tokenizing processes (default: one per core)")


def _docs(args: argparse.Namespace) -> str:
    docs = args.docs or os.path.join(args.out, "docs")
    if "://" not in docs and not os.path.exists(docs):
        raise TokenizerError(f"--docs {docs}: no such folder (build the corpus first, or "
                             "name the shards with --docs)")
    return docs


def _say(line: str) -> None:
    print(line, flush=True)


def run_tokenizer_train(args: argparse.Namespace, log: Callable[[str], None] = _say) -> int:
    from webtext_pipeline.tokenizer.training import train_tokenizer

    info = train_tokenizer(_docs(args), os.path.join(args.out, "tokenizer"),
                           vocab_size=args.vocab_size, max_train_bytes=args.max_train_bytes,
                           seed=args.tokenizer_seed, min_frequency=args.min_frequency,
                           force=args.force, log=log)
    if info["vocab_size"] < info["vocab_size_requested"]:
        log(f"tokenizer: vocabulary {info['vocab_size']:,} < --vocab-size "
            f"{info['vocab_size_requested']:,} (recorded in webtext_tokenizer.json)")
    return 0


def _tokenizer_info(directory: str) -> dict | None:
    from webtext_pipeline.tokenizer.encoder import INFO_FILE

    try:
        with open(os.path.join(directory, INFO_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _settle_build_tokenizer(out: str, spec: str, log: Callable[[str], None]) -> None:
    """Make OUT/tokenizer the tokenizer of OUT/tokens (the train stage copies it beside the
    model): write or copy it when absent; refuse when it holds a different one."""
    from webtext_pipeline.tokenizer.encoder import load_encoder, write_gpt2_tokenizer

    target = os.path.join(out, "tokenizer")
    if os.path.abspath(spec) == os.path.abspath(target):
        return
    wanted = load_encoder(spec).checksum
    present = _tokenizer_info(target)
    if present is not None:
        if present.get("checksum") != wanted:
            raise TokenizerError(
                f"--tokenizer {spec}: {target} holds another tokenizer "
                f"({present.get('name', '?')}); tokens and model would disagree. "
                f"Remove {target} or use another --out")
        return
    if os.path.exists(target) and os.listdir(target):
        raise TokenizerError(f"--tokenizer {spec}: {target} exists and is not a tokenizer "
                             "written by webtext")
    if spec == "gpt2":
        write_gpt2_tokenizer(target)
    else:
        shutil.copytree(spec, target, dirs_exist_ok=True)
    log(f"tokenize: wrote the tokenizer ({spec}) to {target}")


def run_tokenize(args: argparse.Namespace, log: Callable[[str], None] = _say) -> int:
    from webtext_pipeline.tokenizer.corpus import tokenize_corpus

    docs = _docs(args)
    spec = args.tokenizer or os.path.join(args.out, "tokenizer")
    if spec != "gpt2" and not os.path.isdir(spec):
        raise TokenizerError(f"--tokenizer {spec}: no such folder (run 'webtext tokenizer "
                             "train' first, or use --tokenizer gpt2)")
    _settle_build_tokenizer(args.out, spec, log)
    tokenize_corpus(docs, spec, os.path.join(args.out, "tokens"), workers=args.workers,
                    force=args.force, log=log)
    return 0


def run_tokenizer_stage(args: argparse.Namespace, log: Callable[[str], None] = _say) -> dict:
    """Both steps for ``webtext build``: train (or GPT-2's), then tokenize. Returns
    ``{"tokenizer": info, "tokens": meta}`` for the build report."""
    from webtext_pipeline.tokenizer.corpus import tokenize_corpus
    from webtext_pipeline.tokenizer.training import train_tokenizer

    docs = os.path.join(args.out, "docs")
    tokenizer_dir = os.path.join(args.out, "tokenizer")
    if args.tokenizer == "gpt2":
        _settle_build_tokenizer(args.out, "gpt2", log)
        info = _tokenizer_info(tokenizer_dir) or {}
        spec = "gpt2"
    else:
        info = train_tokenizer(docs, tokenizer_dir, vocab_size=args.vocab_size,
                               max_train_bytes=args.max_train_bytes, seed=args.tokenizer_seed,
                               min_frequency=args.min_frequency, log=log)
        spec = tokenizer_dir
    meta = tokenize_corpus(docs, spec, os.path.join(args.out, "tokens"),
                           workers=args.tokenize_workers, log=log)
    return {"tokenizer": info, "tokens": meta}
