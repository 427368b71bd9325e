"""Named model and training configurations (no torch import: the CLI reads these cheaply).

Three model sizes, each with training defaults that suit it:

- ``tiny``: a couple of layers of width 64; trains on a CPU in seconds (tests, the
  embedded-sample build).
- ``compact``: 8 layers of width 512, ~51M parameters with GPT-2's vocabulary; the
  default for a GPU run that validates a real corpus in well under an hour.
- ``gpt2-124m``: GPT-2 small (12 layers, width 768, 1,024 positions).

The vocabulary size always comes from the token files' ``meta.json``; a model's
embedding is padded up to a multiple of 64 (``padded_vocab_size``) so the output
matmul is tensor-core friendly, as nanoGPT does with 50,257 → 50,304.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

VOCAB_MULTIPLE = 64


@dataclass(frozen=True)
class ModelConfig:
    """GPT-2's architecture knobs. ``vocab_size`` is the tokenizer's; see ``padded_vocab_size``."""

    vocab_size: int
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    layer_norm_epsilon: float = 1e-5
    vocab_multiple: int = VOCAB_MULTIPLE  # 1 keeps the vocabulary unpadded

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size {self.vocab_size}: must be at least 2")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        for name in ("block_size", "n_layer", "n_head", "n_embd", "vocab_multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)}: must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout}: must be in [0, 1)")

    @property
    def padded_vocab_size(self) -> int:
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and run-length settings. Stops at whichever limit comes first."""

    batch_size: int = 8  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimiser step
    learning_rate: float = 6e-4
    min_lr_ratio: float = 0.1  # cosine decays to learning_rate * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 turns clipping off
    max_steps: int | None = 1000
    max_tokens: int | None = None
    max_minutes: float | None = None
    eval_interval: int = 100  # steps between evaluations on val.bin (and at the end)
    eval_iters: int = 20  # batches per evaluation
    log_interval: int = 10
    ckpt_interval: int = 200  # steps between resumable checkpoints (and at the end)
    seed: int = 1337
    dtype: str = "auto"  # auto | fp32 | bf16  (auto: bf16 on CUDA when supported, else fp32)
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval",
                     "ckpt_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)}: must be at least 1")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps {self.warmup_steps}: must be 0 or more")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate {self.learning_rate}: must be positive")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"dtype {self.dtype!r}: choose auto, fp32 or bf16")
        limits = (self.max_steps, self.max_tokens, self.max_minutes)
        if all(limit is None for limit in limits):
            raise ValueError("no stop given: set max_steps, max_tokens or max_minutes")
        for name, limit in zip(("max_steps", "max_tokens", "max_minutes"), limits, strict=True):
            if limit is not None and limit <= 0:
                raise ValueError(f"{name} {limit}: must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# Architecture per name (vocab_size filled from meta.json at run time).
MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(block_size=64, n_layer=2, n_head=2, n_embd=64),
    "compact": dict(block_size=1024, n_layer=8, n_head=8, n_embd=512),
    "gpt2-124m": dict(block_size=1024, n_layer=12, n_head=12, n_embd=768),
}

# Training defaults per name. compact: 16 x 1024 x 8 = 131k tokens a step;
# gpt2-124m: nanoGPT's ~0.5M tokens a step (16 x 1024 x 32).
TRAIN_PRESETS: dict[str, dict] = {
    "tiny": dict(batch_size=16, grad_accum=1, learning_rate=3e-3, warmup_steps=20,
                 max_steps=300, eval_interval=50, eval_iters=8, log_interval=10,
                 ckpt_interval=100, weight_decay=0.1),
    "compact": dict(batch_size=16, grad_accum=8, learning_rate=1.5e-3, warmup_steps=200,
                    max_steps=5000, eval_interval=250, eval_iters=20, log_interval=10,
                    ckpt_interval=500),
    "gpt2-124m": dict(batch_size=16, grad_accum=32, learning_rate=6e-4, warmup_steps=700,
                      max_steps=19073, eval_interval=250, eval_iters=20, log_interval=10,
                      ckpt_interval=500),
}

CONFIG_NAMES = tuple(MODEL_PRESETS)


def model_config(name: str, vocab_size: int, **overrides) -> ModelConfig:
    """The named architecture for this vocabulary, with any field overridden."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown config {name!r}: choose one of {', '.join(CONFIG_NAMES)}")
    return ModelConfig(vocab_size=vocab_size, **{**MODEL_PRESETS[name], **overrides})


def train_config(name: str, **overrides) -> TrainConfig:
    """The named training defaults; overrides whose value is None are ignored, except that
    giving any of max_steps/max_tokens/max_minutes replaces the preset's step limit."""
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown config {name!r}: choose one of {', '.join(CONFIG_NAMES)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    preset = dict(TRAIN_PRESETS[name])
    if any(k in given for k in ("max_steps", "max_tokens", "max_minutes")):
        preset.update(max_steps=None, max_tokens=None, max_minutes=None)
    return TrainConfig(**{**preset, **given})
