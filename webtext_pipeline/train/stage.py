"""The train stage of ``webtext build``: train, export and validate in OUT/model.

On the embedded sample the build trains ``tiny`` on the CPU for at most
``BUILD_MAX_STEPS`` steps or ``BUILD_MAX_MINUTES`` (well under a minute on a
2-core machine). A rerun continues or reuses the checkpoint when the token
files and model are unchanged, and starts over when they changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from webtext_pipeline.train.config import train_config
from webtext_pipeline.train.trainer import CheckpointMismatch, train
from webtext_pipeline.train.validate import DEFAULT_MARGIN, validate

BUILD_CONFIG = "tiny"
BUILD_MAX_STEPS = 600
BUILD_MAX_MINUTES = 1.0


def run_stage(out_dir: str, tokens_dir: str | None = None, tokenizer_dir: str | None = None,
              config: str = BUILD_CONFIG, device: str = "cpu",
              max_steps: int | None = BUILD_MAX_STEPS,
              max_minutes: float | None = BUILD_MAX_MINUTES, margin: float = DEFAULT_MARGIN,
              seed: int | None = None, threads: int | None = 1,
              log: Callable[[str], None] | None = print) -> dict:
    """Train CONFIG on OUT/tokens into OUT/model, validate, and return a summary for the
    build report: {"model_dir", "train": TrainResult dict, "validation": report dict}.

    ``tokenizer_dir`` defaults to OUT/tokenizer when it holds a tokenizer.json. ``threads``
    (default 1) pins PyTorch's CPU threads: ``tiny`` gains little from more, and spinning
    OpenMP threads slow twenty-fold when the machine is shared with busy processes.
    """
    tokens_dir = tokens_dir or os.path.join(out_dir, "tokens")
    default_tokenizer = os.path.join(out_dir, "tokenizer")
    if tokenizer_dir is None and os.path.isfile(os.path.join(default_tokenizer, "tokenizer.json")):
        tokenizer_dir = default_tokenizer
    model_dir = os.path.join(out_dir, "model")
    cfg = train_config(config, max_steps=max_steps, max_minutes=max_minutes, seed=seed)
    kwargs = dict(config=config, train_cfg=cfg, device=device, tokenizer_dir=tokenizer_dir,
                  log=log)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        try:
            result = train(tokens_dir, model_dir, resume=True, **kwargs)
        except CheckpointMismatch as exc:
            if log:
                log(f"train: {exc}; starting over")
            result = train(tokens_dir, model_dir, resume=False, **kwargs)
        report = validate(model_dir, tokens_dir, tokenizer_dir=tokenizer_dir, margin=margin,
                          device=device, log=log)
    finally:
        torch.set_num_threads(before)
    return {"model_dir": model_dir, "train": result.to_dict(), "validation": report}
