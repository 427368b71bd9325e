"""Arguments and runners for ``webtext train`` and ``webtext validate`` (used by cli.py).

Nothing here imports torch at import time, so building the CLI's parser stays
cheap and works without the ``train`` extra. Bad options and inputs are
reported as ``TrainUsageError`` (a ValueError) before any work starts; the CLI
prints them as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from webtext_pipeline.argtypes import positive_float, positive_int
from webtext_pipeline.train import TrainUsageError, require_torch
from webtext_pipeline.train.config import CONFIG_NAMES, train_config

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def _device(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: choose {DEVICE_CHOICES}")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """``webtext train`` options (the CLI adds ``--out`` itself, as for other commands)."""
    group = parser.add_argument_group("train stage")
    group.add_argument("--tokens", metavar="DIR",
                       help="token files (train.bin, val.bin, meta.json); default OUT/tokens")
    group.add_argument("--config", choices=CONFIG_NAMES, default="compact",
                       help="model size (default: compact; tiny trains on a CPU in seconds)")
    group.add_argument("--max-steps", type=positive_int, metavar="N")
    group.add_argument("--max-tokens", type=positive_int, metavar="N",
                       help="stop after this many training tokens (1e9 works)")
    group.add_argument("--max-minutes", type=positive_float, metavar="M",
                       help="stop after this much training time (a resumed run counts all)")
    group.add_argument("--device", type=_device, default="auto", help=DEVICE_CHOICES)
    group.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto",
                       help="auto: bf16 autocast on a CUDA GPU that has it, else fp32")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--threads", type=positive_int, metavar="N",
                       help="PyTorch CPU threads (default: all cores; 1 on a shared machine)")
    group.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="sequences per micro-batch (default: the config's)")
    group.add_argument("--grad-accum", type=positive_int, metavar="N",
                       help="micro-batches per optimiser step (default: the config's)")
    group.add_argument("--lr", type=positive_float, metavar="LR", help="peak learning rate")
    group.add_argument("--warmup-steps", type=int, metavar="N")
    group.add_argument("--eval-interval", type=positive_int, metavar="N")
    group.add_argument("--seed", type=int, default=None)
    group.add_argument("--tokenizer", metavar="DIR",
                       help="tokenizer files to copy beside the checkpoint; default "
                       "OUT/tokenizer when it exists")
    group.add_argument("--no-resume", action="store_true",
                       help="start over even if OUT/model holds a checkpoint")
    group.add_argument("--no-validate", action="store_true",
                       help="skip the validation report after training")
    group.add_argument("--margin", type=positive_float, default=None, metavar="NATS",
                       help="validation pass margin below the unigram baseline (default 0.5)")


def add_validate_options(parser: argparse.ArgumentParser) -> None:
    """``webtext validate`` options."""
    group = parser.add_argument_group("validate")
    group.add_argument("--model", required=True, metavar="DIR",
                       help="a trained model directory (config.json, model.safetensors)")
    group.add_argument("--tokens", required=True, metavar="DIR", help="token files")
    group.add_argument("--tokenizer", metavar="DIR",
                       help="tokenizer for text samples; default: the one beside the model")
    group.add_argument("--margin", type=positive_float, default=None, metavar="NATS",
                       help="pass margin below the unigram baseline (default 0.5)")
    group.add_argument("--max-val-tokens", type=positive_int, default=1 << 20, metavar="N",
                       help="validation tokens to score (default 1,048,576)")
    group.add_argument("--device", type=_device, default="auto", help=DEVICE_CHOICES)


def _check_dir(flag: str, path: str, needs: str) -> None:
    if not os.path.isdir(path):
        raise TrainUsageError(f"{flag} {path}: no such directory")
    if not os.path.isfile(os.path.join(path, needs)):
        raise TrainUsageError(f"{flag} {path}: no {needs} there")


def _check_tokens(path: str) -> None:
    from webtext_pipeline.train.data import TokenFiles, TokenFilesError

    try:
        TokenFiles.open(path)
    except TokenFilesError as exc:
        raise TrainUsageError(f"--tokens: {exc}") from None


def _check_device(name: str) -> None:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainUsageError(f"--device {name}: no CUDA device visible to PyTorch "
                              f"(torch {torch.__version__}); use --device cpu or auto")


def _warn_cpu(config: str, device: str, log: Callable[[str], None]) -> None:
    import torch

    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    if on_cpu and config != "tiny":
        log(f"train: warning: {config} on a CPU trains at a few hundred tokens/s; "
            "use a GPU, or --config tiny for a quick check")


def run_train(args: argparse.Namespace, log: Callable[[str], None] = print) -> int:
    """``webtext train``: check everything, train, export, validate. Exit status: 0 when the
    validation passes (or is skipped), 1 when it fails."""
    out = getattr(args, "out", None) or "out"
    tokens = args.tokens or os.path.join(out, "tokens")
    _check_dir("--tokens", tokens, "meta.json")
    _check_tokens(tokens)
    tokenizer = args.tokenizer
    if tokenizer:
        _check_dir("--tokenizer", tokenizer, "tokenizer.json")
    elif os.path.isfile(os.path.join(out, "tokenizer", "tokenizer.json")):
        tokenizer = os.path.join(out, "tokenizer")
    try:
        cfg = train_config(
            args.config, max_steps=args.max_steps, max_tokens=args.max_tokens,
            max_minutes=args.max_minutes, batch_size=args.batch_size, grad_accum=args.grad_accum,
            learning_rate=args.lr, warmup_steps=args.warmup_steps,
            eval_interval=args.eval_interval, seed=args.seed, dtype=args.dtype,
            compile=args.compile or None,
        )
    except ValueError as exc:
        raise TrainUsageError(str(exc)) from None
    require_torch()
    _check_device(args.device)
    _warn_cpu(args.config, args.device, log)

    from webtext_pipeline.train.data import TokenFilesError
    from webtext_pipeline.train.trainer import TrainError, train

    model_dir = os.path.join(out, "model")
    try:
        result = train(tokens, model_dir, config=args.config, train_cfg=cfg, device=args.device,
                       tokenizer_dir=tokenizer, resume=not args.no_resume,
                       threads=args.threads, log=log)
    except (TrainError, TokenFilesError) as exc:
        raise TrainUsageError(str(exc)) from None
    log(f"train: {result.step} steps, {result.tokens:,} tokens in {result.seconds:.1f} s "
        f"({result.tokens_per_s:,.0f} tokens/s"
        + (f", MFU {result.mfu:.1%}" if result.mfu else "")
        + f"); val loss {result.val_loss:.4f}; checkpoint in {model_dir}")
    if args.no_validate:
        return 0
    return _validate(model_dir, tokens, tokenizer, args.margin, 1 << 20, args.device, log)


def run_validate(args: argparse.Namespace, log: Callable[[str], None] = print) -> int:
    """``webtext validate``: 0 when the model passes, 1 when it does not."""
    _check_dir("--model", args.model, "config.json")
    _check_dir("--tokens", args.tokens, "meta.json")
    _check_tokens(args.tokens)
    if args.tokenizer:
        _check_dir("--tokenizer", args.tokenizer, "tokenizer.json")
    require_torch()
    _check_device(args.device)
    return _validate(args.model, args.tokens, args.tokenizer, args.margin, args.max_val_tokens,
                     args.device, log)


def _validate(model_dir: str, tokens: str, tokenizer: str | None, margin: float | None,
              max_tokens: int, device: str, log: Callable[[str], None]) -> int:
    from webtext_pipeline.train.validate import DEFAULT_MARGIN, validate

    try:
        report = validate(model_dir, tokens, tokenizer_dir=tokenizer,
                          margin=DEFAULT_MARGIN if margin is None else margin,
                          max_tokens=max_tokens, device=device, log=None)
    except (ValueError, FileNotFoundError) as exc:
        raise TrainUsageError(str(exc)) from None
    log(f"validate: val loss {report['val_loss']:.4f} (perplexity {report['val_perplexity']:.1f}) "
        f"over {report['val_tokens_scored']:,} tokens; baselines: uniform "
        f"{report['baselines']['uniform']:.4f}, unigram {report['baselines']['unigram']:.4f}")
    for sample in report["samples"][:2]:
        shown = (repr(sample["prompt"] + sample["text"]) if "text" in sample
                 else f"{sample['prompt_ids']} → {sample['ids'][:12]}…")
        log(f"  sample: {shown[:160]}")
    log(f"validate: {report['verdict']}")
    log(f"validate: report in {os.path.join(model_dir, 'validation.json')} and validation.html")
    return 0 if report["passed"] else 1
