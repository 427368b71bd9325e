"""The dedup stage's options, shared by `webtext dedup` and `webtext build` (no Beam here)."""

from __future__ import annotations

import argparse

from webtext_pipeline.dedup.model import DedupParams


def add_dedup_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dedup stage")
    group.add_argument("--threshold", type=float, default=DedupParams.threshold,
                       help="near duplicates: word n-gram Jaccard at or above this "
                       f"(default {DedupParams.threshold})")
    group.add_argument("--num-perm", type=int, default=DedupParams.num_perm, metavar="N",
                       help=f"MinHash permutations (default {DedupParams.num_perm})")
    group.add_argument("--ngram", type=int, default=DedupParams.ngram, metavar="N",
                       help=f"words per shingle (default {DedupParams.ngram})")


def dedup_params(args: argparse.Namespace) -> DedupParams:
    """DedupParams from the options; ValueError names the bad option."""
    return DedupParams(threshold=args.threshold, num_perm=args.num_perm, ngram=args.ngram)
