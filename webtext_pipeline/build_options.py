"""The options only `webtext build` has: corpus shards, the model, --until, --overwrite.

No Beam here; cli.py turns them (and every stage's options) into a BuildPlan.
"""

from __future__ import annotations

import argparse

from webtext_pipeline.shards import (
    DEFAULT_SHARD_BYTES,
    DEFAULT_VAL_FRACTION,
    SAMPLE_VAL_FRACTION,
    check_val_fraction,
)
from webtext_pipeline.tokenizer.commands import byte_size

STAGE_CHOICES = ("links", "fetch", "extract", "dedup", "shards", "tokens", "model")
MODEL_CHOICES = ("tiny", "compact", "gpt2-124m")
SAMPLE_MODEL = "tiny"
DEFAULT_MODEL = "compact"


def add_build_options(parser: argparse.ArgumentParser) -> None:
    shards = parser.add_argument_group("corpus shards")
    shards.add_argument("--shard-size", type=byte_size, default=DEFAULT_SHARD_BYTES,
                        metavar="SIZE", help="target bytes per shard, e.g. 256MiB (default)")
    shards.add_argument("--val-fraction", type=float, default=None, metavar="F",
                        help=f"documents held out as split=val, by a hash of id (default "
                        f"{DEFAULT_VAL_FRACTION}, nanoGPT's; {SAMPLE_VAL_FRACTION} on the "
                        "embedded sample)")
    model = parser.add_argument_group("model stage")
    model.add_argument("--model", choices=MODEL_CHOICES, default=None,
                       help=f"GPT configuration to train (default {DEFAULT_MODEL}; "
                       f"{SAMPLE_MODEL} on the embedded sample)")
    model.add_argument("--train-device", default="auto", choices=("auto", "cpu", "cuda"),
                       help="where the model trains (default auto: cuda when present)")
    model.add_argument("--train-max-steps", type=int, default=None, metavar="N")
    model.add_argument("--train-max-minutes", type=float, default=None, metavar="M")
    run = parser.add_argument_group("build")
    run.add_argument("--until", choices=STAGE_CHOICES, default="model",
                     help="stop after this stage (default: model, the whole build)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a different build already in --out")


def val_fraction(args: argparse.Namespace, on_sample: bool) -> float:
    if args.val_fraction is None:
        return SAMPLE_VAL_FRACTION if on_sample else DEFAULT_VAL_FRACTION
    return check_val_fraction(args.val_fraction)


def train_settings(args: argparse.Namespace, on_sample: bool) -> dict:
    """Keyword arguments for webtext_pipeline.train.stage.run_stage (which caps ``tiny`` at
    a minute on one CPU thread; larger models train to their preset's limits)."""
    config = args.model or (SAMPLE_MODEL if on_sample else DEFAULT_MODEL)
    for flag, value in (("--train-max-steps", args.train_max_steps),
                        ("--train-max-minutes", args.train_max_minutes)):
        if value is not None and value <= 0:
            raise ValueError(f"{flag} {value}: must be more than 0")
    settings: dict = {"config": config, "device": args.train_device}
    if config != SAMPLE_MODEL:
        settings.update(max_steps=None, max_minutes=None, threads=None)
    if args.train_max_steps is not None:
        settings["max_steps"] = args.train_max_steps
    if args.train_max_minutes is not None:
        settings["max_minutes"] = args.train_max_minutes
    return settings
