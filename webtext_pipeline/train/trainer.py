"""The training loop: random windows of train.bin → AdamW → a resumable checkpoint → export.

One call, ``train(tokens_dir, model_dir, ...)``, does the whole stage:

- batches of random windows from the memmapped ``train.bin``, each fixed by
  ``(seed, step, micro_step)`` (see ``data.py``);
- AdamW with weight-decay groups, linear warmup then cosine decay to
  ``learning_rate * min_lr_ratio``, gradient clipping and accumulation;
- bf16 autocast and TF32 on CUDA (``dtype="auto"``), fused AdamW there, optional
  ``torch.compile``;
- evaluation on the same fixed ``val.bin`` batches every ``eval_interval`` steps;
- tokens/s and model-FLOPs utilisation (MFU, against the GPU's dense bf16 peak)
  in the log;
- stops at ``max_steps``, ``max_tokens`` or ``max_minutes``, whichever comes first;
- a resumable checkpoint (model, optimiser, step, tokens, RNG, schedule) in
  ``MODEL_DIR/checkpoint/state.pt`` every ``ckpt_interval`` steps, on Ctrl-C and
  at the end: rerunning the same command continues a killed run, and on a CPU a
  resumed run ends with exactly the loss an uninterrupted one does;
- the final weights exported with ``export.save_pretrained``.

Logs go to ``MODEL_DIR/train_log.jsonl`` (one JSON object a line, ``kind`` =
``train`` or ``eval``) and, as short lines, to the ``log`` callable.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import numpy as np
import torch

from webtext_pipeline.train.config import ModelConfig, TrainConfig, model_config, train_config
from webtext_pipeline.train.data import TokenFiles, eval_batches, train_batch
from webtext_pipeline.train.export import save_pretrained, strip_wrappers
from webtext_pipeline.train.model import GPT

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_NAME = "state.pt"
LOG_NAME = "train_log.jsonl"
_HORIZON_PROBE_STEPS = 5  # minutes-only runs: time this many steps, then fix the schedule

# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, most specific first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("H800", 989e12),
    ("GH200", 989e12), ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12),
    ("L40S", 362e12), ("L4", 121e12), ("A10G", 70e12), ("A10", 125e12),
    ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("V100", 125e12), ("T4", 65e12),
)


class TrainError(ValueError):
    """A bad option or an incompatible checkpoint: one line, before any training."""


class CheckpointMismatch(TrainError):
    """MODEL_DIR holds a checkpoint of another model or other token files."""


@dataclass
class TrainResult:
    model_dir: str
    config_name: str
    step: int
    tokens: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    tokens_per_s: float
    mfu: float | None
    stopped_by: str
    resumed_from: int
    device: str
    dtype: str
    n_params: int

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {name}: no CUDA device visible to PyTorch "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise TrainError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> str:
    if name != "auto":
        return name
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def peak_flops(device: torch.device, dtype: str) -> float | None:
    """The device's dense bf16 peak, or None when unknown (CPUs, unlisted GPUs, fp32 runs
    without TF32 are still compared against the bf16 peak, as MFU conventionally is)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, flops in PEAK_BF16_FLOPS:
        if fragment in name:
            return flops
    return None


def learning_rate(step: int, cfg: TrainConfig, horizon: int | None) -> float:
    """Linear warmup over warmup_steps, then cosine to lr·min_lr_ratio at ``horizon``."""
    peak = cfg.learning_rate
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    if horizon is None:  # minutes-only run before its horizon is measured
        return peak
    floor = peak * cfg.min_lr_ratio
    if step >= horizon:
        return floor
    span = max(1, horizon - cfg.warmup_steps)
    progress = (step - cfg.warmup_steps) / span
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def planned_steps(cfg: TrainConfig, tokens_per_step: int) -> int | None:
    """The schedule's length when the stop is by steps and/or tokens (None: minutes only)."""
    limits = []
    if cfg.max_steps is not None:
        limits.append(cfg.max_steps)
    if cfg.max_tokens is not None:
        limits.append(math.ceil(cfg.max_tokens / tokens_per_step))
    return min(limits) if limits else None


def _to_device(batch: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    tensor = torch.from_numpy(batch)
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor[:, :-1], tensor[:, 1:]


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def checkpoint_path(model_dir: str) -> str:
    return os.path.join(model_dir, CHECKPOINT_DIR, CHECKPOINT_NAME)


def read_log(model_dir: str) -> list[dict]:
    path = os.path.join(model_dir, LOG_NAME)
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _truncate_log(model_dir: str, step: int) -> None:
    """Drop log lines past the checkpoint a resumed run restarts from (a killed run's tail)."""
    entries = [e for e in read_log(model_dir) if e["step"] <= step]
    path = os.path.join(model_dir, LOG_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in entries)
    os.replace(path + ".tmp", path)


class _Run:
    """State of one training run (kept in a class so the loop reads top to bottom)."""

    def __init__(self, files: TokenFiles, model_dir: str, config_name: str, mcfg: ModelConfig,
                 tcfg: TrainConfig, device: torch.device, log: Callable[[str], None],
                 tokenizer_dir: str | None = None) -> None:
        self.files, self.model_dir, self.config_name = files, model_dir, config_name
        self.tokenizer_dir = tokenizer_dir
        self.mcfg, self.tcfg, self.device, self.log = mcfg, tcfg, device, log
        self.dtype = resolve_dtype(tcfg.dtype, device)
        if self.dtype == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainError("--dtype bf16: this GPU does not support bfloat16")
        self.tokens_per_step = tcfg.batch_size * tcfg.grad_accum * mcfg.block_size
        torch.manual_seed(tcfg.seed)
        self.model = GPT(mcfg).to(device)
        self.optimizer = self.model.optimizer(
            tcfg.weight_decay, tcfg.learning_rate, (tcfg.beta1, tcfg.beta2), device.type)
        self.step = 0
        self.tokens = 0
        self.elapsed = 0.0  # training seconds over all runs of this checkpoint
        self.horizon = planned_steps(tcfg, self.tokens_per_step)
        self.resumed_from = 0
        self.flops_per_token = self.model.flops_per_token()
        self.peak = peak_flops(device, self.dtype)
        self.log_path = os.path.join(model_dir, LOG_NAME)

    # -- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        path = checkpoint_path(self.model_dir)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        state = {
            "model": {strip_wrappers(k): v for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "tokens": self.tokens,
            "elapsed": self.elapsed,
            "horizon": self.horizon,
            "rng": _rng_state(self.device),
            "model_config": self.mcfg.to_dict(),
            "train_config": self.tcfg.to_dict(),
            "config_name": self.config_name,
            "data": self.files.fingerprint(),
        }
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)

    def load_checkpoint(self) -> bool:
        path = checkpoint_path(self.model_dir)
        if not os.path.isfile(path):
            return False
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["model_config"] != self.mcfg.to_dict():
            was = state["model_config"]
            raise CheckpointMismatch(
                f"{path}: holds another model ({state.get('config_name')}, {was['n_layer']} x "
                f"{was['n_embd']}, context {was['block_size']}, vocab {was['vocab_size']}); "
                "use another --out, or --no-resume to start over")
        if state.get("data") != self.files.fingerprint():
            raise CheckpointMismatch(
                f"{path}: trained on other token files than {self.files.directory}; "
                f"use another --out, or --no-resume to start over")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        self.elapsed = float(state["elapsed"])
        if self.horizon is None:
            self.horizon = state["horizon"]
        _set_rng_state(state["rng"], self.device)
        self.resumed_from = self.step
        _truncate_log(self.model_dir, self.step)
        return True

    # -- the loop ----------------------------------------------------------------------------

    def _record(self, entry: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _autocast(self):
        if self.dtype == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def evaluate(self, model: torch.nn.Module, batches: list[np.ndarray]) -> float:
        model.eval()
        total = 0.0
        for batch in batches:
            x, y = _to_device(batch, self.device)
            with self._autocast():
                _, loss = model(x, y)
            total += float(loss)
        model.train()
        return total / len(batches)

    def stop_reason(self) -> str | None:
        cfg = self.tcfg
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return "max_steps"
        if cfg.max_tokens is not None and self.tokens >= cfg.max_tokens:
            return "max_tokens"
        if cfg.max_minutes is not None and self.elapsed >= cfg.max_minutes * 60:
            return "max_minutes"
        return None

    def _log_train(self, loss: float, lr: float, grad_norm: torch.Tensor | None,
                   tokens: int, seconds: float) -> None:
        tok_s = tokens / max(seconds, 1e-9)
        mfu = (self.flops_per_token * tok_s / self.peak) if self.peak else None
        norm = float(grad_norm) if grad_norm is not None else None
        self._record({"kind": "train", "step": self.step, "tokens": self.tokens, "loss": loss,
                      "lr": lr, "grad_norm": norm, "tokens_per_s": tok_s, "mfu": mfu,
                      "elapsed_s": self.elapsed})
        self.log(f"step {self.step:>6} | loss {loss:.4f} | lr {lr:.2e} | {tok_s:,.0f} tok/s"
                 + (f" | MFU {mfu:.1%}" if mfu else ""))

    def _probe_horizon(self, probe_start: tuple[int, float] | None) -> tuple[int, float] | None:
        """Minutes-only runs: time a few steps after the first two, then fix the schedule."""
        if self.step - self.resumed_from == 2:
            return (self.step, self.elapsed)
        if probe_start and self.step - probe_start[0] >= _HORIZON_PROBE_STEPS:
            per_step = (self.elapsed - probe_start[1]) / (self.step - probe_start[0])
            left = self.tcfg.max_minutes * 60 - self.elapsed
            self.horizon = self.step + max(1, int(left / max(per_step, 1e-9)))
            self.log(f"train: {per_step * 1e3:.0f} ms/step → schedule of {self.horizon} steps "
                     f"for {self.tcfg.max_minutes:g} minutes")
        return probe_start

    def run(self) -> TrainResult:
        cfg, mcfg, device = self.tcfg, self.mcfg, self.device
        if device.type == "cuda":  # TF32 for any fp32 matmul left outside autocast
            torch.set_float32_matmul_precision("high")
        model: torch.nn.Module = self.model
        if cfg.compile:
            model = torch.compile(self.model)
        val_batches = eval_batches(self.files, cfg.batch_size, mcfg.block_size, cfg.eval_iters,
                                   cfg.seed)
        params = [p for p in self.model.parameters() if p.requires_grad]
        n_params = self.model.num_params()
        self.log(f"train: {self.config_name} ({n_params / 1e6:.2f}M parameters, "
                 f"vocab {mcfg.vocab_size}→{mcfg.padded_vocab_size}, block {mcfg.block_size}) "
                 f"on {device} {self.dtype}{' compiled' if cfg.compile else ''}; "
                 f"{self.tokens_per_step:,} tokens/step"
                 + (f"; resumed at step {self.step}" if self.resumed_from else ""))
        stopped_by = self.stop_reason()
        loss_sum = torch.zeros((), device=device)
        interval_steps, interval_tokens, interval_time = 0, 0, 0.0
        last_loss: float | None = None
        val_loss: float | None = None
        probe_start = None
        lr, grad_norm = 0.0, None
        model.train()
        try:
            while stopped_by is None:
                started = time.perf_counter()
                lr = learning_rate(self.step, cfg, self.horizon)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                for micro in range(cfg.grad_accum):
                    batch = train_batch(self.files, cfg.batch_size, mcfg.block_size, cfg.seed,
                                        self.step, micro)
                    x, y = _to_device(batch, device)
                    with self._autocast():
                        _, loss = model(x, y)
                    (loss / cfg.grad_accum).backward()
                    loss_sum += loss.detach() / cfg.grad_accum
                grad_norm = (torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                             if cfg.grad_clip > 0 else None)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.tokens += self.tokens_per_step
                interval_steps += 1
                interval_tokens += self.tokens_per_step
                counted_stop = (cfg.max_steps is not None and self.step >= cfg.max_steps) or (
                    cfg.max_tokens is not None and self.tokens >= cfg.max_tokens)
                log_now = self.step % cfg.log_interval == 0 or self.step == 1 or counted_stop
                if log_now:
                    last_loss = float(loss_sum) / interval_steps  # one device sync per log line
                seconds = time.perf_counter() - started
                self.elapsed += seconds
                interval_time += seconds
                if self.horizon is None:
                    probe_start = self._probe_horizon(probe_start)
                if log_now:
                    self._log_train(last_loss, lr, grad_norm, interval_tokens, interval_time)
                    loss_sum.zero_()
                    interval_steps, interval_tokens, interval_time = 0, 0, 0.0
                stopped_by = self.stop_reason()
                if self.step % cfg.eval_interval == 0 or stopped_by:
                    val_loss = self.evaluate(model, val_batches)
                    self._record({"kind": "eval", "step": self.step, "tokens": self.tokens,
                                  "val_loss": val_loss, "elapsed_s": self.elapsed})
                    self.log(f"step {self.step:>6} | val loss {val_loss:.4f}")
                if self.step % cfg.ckpt_interval == 0 or stopped_by:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            self.save_checkpoint()
            self.log(f"train: interrupted; checkpoint at step {self.step} "
                     f"(rerun the same command to continue)")
            raise
        if interval_steps:  # a stop by minutes between two log lines
            last_loss = float(loss_sum) / interval_steps
            self._log_train(last_loss, lr, grad_norm, interval_tokens, interval_time)
        if val_loss is None:  # the checkpoint had already reached its stop
            val_loss = self.evaluate(model, val_batches)
        self.export()
        throughput = [e["tokens_per_s"] for e in read_log(self.model_dir)
                      if e["kind"] == "train" and e["step"] > 1]
        tok_s = float(np.median(throughput)) if throughput else 0.0
        return TrainResult(
            model_dir=self.model_dir, config_name=self.config_name, step=self.step,
            tokens=self.tokens, train_loss=last_loss, val_loss=val_loss, seconds=self.elapsed,
            tokens_per_s=tok_s,
            mfu=(self.flops_per_token * tok_s / self.peak) if self.peak else None,
            stopped_by=stopped_by or "max_steps", resumed_from=self.resumed_from,
            device=str(self.device), dtype=self.dtype, n_params=n_params,
        )

    def export(self) -> None:
        save_pretrained(self.model, self.mcfg, self.model_dir, self.files.eot_id,
                        tokenizer_dir=self.tokenizer_dir,
                        webtext={"config_name": self.config_name, "step": self.step,
                                 "tokens": self.tokens, "seed": self.tcfg.seed,
                                 "train_config": self.tcfg.to_dict(),
                                 "tokens_meta": self.files.meta})


def train(tokens_dir: str, model_dir: str, config: str = "tiny",
          train_cfg: TrainConfig | None = None, device: str = "auto",
          tokenizer_dir: str | None = None, resume: bool = True,
          model_overrides: dict | None = None, threads: int | None = None,
          log: Callable[[str], None] | None = print) -> TrainResult:
    """Train the named model on TOKENS_DIR, checkpoint and export into MODEL_DIR.

    ``train_cfg`` defaults to the named config's training preset
    (``config.train_config(config)``). With ``resume`` (the default) an existing
    checkpoint in MODEL_DIR is continued; without it the run starts over. ``threads`` sets
    PyTorch's intra-op CPU threads for the run (restored afterwards).
    """
    files = TokenFiles.open(tokens_dir)
    mcfg = model_config(config, files.vocab_size, **(model_overrides or {}))
    files.check_block(mcfg.block_size)
    for split in ("train", "val"):  # an id past the embedding is a cryptic CUDA assert later
        files.check_ids(split)
    tcfg = train_cfg or train_config(config)
    if tokenizer_dir and not os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        raise TrainError(f"--tokenizer {tokenizer_dir}: no tokenizer.json there")
    dev = resolve_device(device)
    os.makedirs(model_dir, exist_ok=True)
    run = _Run(files, model_dir, config, mcfg, tcfg, dev, log or (lambda _line: None),
               tokenizer_dir)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        if not (resume and run.load_checkpoint()):
            for stale in (checkpoint_path(model_dir), os.path.join(model_dir, LOG_NAME)):
                if os.path.exists(stale):
                    os.remove(stale)
        return run.run()
    finally:
        torch.set_num_threads(before)
