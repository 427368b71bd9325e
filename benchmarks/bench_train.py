"""Training throughput: our trainer against a plain reference GPT loop, same shapes, same run.

For each shape it times

- ``ours``: the real ``webtext_pipeline.train.trainer.train`` (memmapped windows,
  AdamW with decay groups, schedule, clipping, SDPA attention, logging);
- ``plain``: a minimal GPT and loop written the plain way in this file (explicit
  masked-softmax attention, one AdamW group, ``loss.item()`` every step), with the
  same vocabulary, layers, width, context, batch and optimiser step;

and prints tokens/s (median over the timed steps, after warm-up steps) and, on a
GPU with a known peak, model-FLOPs utilisation. Shapes:

- ``tiny``: the test model (2 × 64, context 64, batch 16, vocabulary 512);
- ``anchor``: the issue's nanoGPT reference shape (4 × 256, context 256, batch 8,
  vocabulary 50,304; ~16M parameters);
- ``compact``: the GPU stage's default (8 × 512, context 1024, vocabulary 50,257
  padded to 50,304; ~51M parameters), batch 1 on a CPU, 16 on a GPU.

    python benchmarks/bench_train.py                       # CPU: tiny, anchor, compact
    python benchmarks/bench_train.py --configs tiny --steps 50
    python benchmarks/bench_train.py --device cuda --configs compact --dtype bf16 \\
        --compile both --steps 30                          # what gpu_train.sh runs

Token files are random ids (speed does not depend on the text).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from webtext_pipeline.train.config import TrainConfig, model_config  # noqa: E402
from webtext_pipeline.train.data import write_tokens  # noqa: E402
from webtext_pipeline.train.model import GPT  # noqa: E402
from webtext_pipeline.train.trainer import (  # noqa: E402
    peak_flops,
    read_log,
    resolve_device,
    train,
)

SHAPES = {
    "tiny": dict(config="tiny", vocab=512, overrides={}, cpu_batch=16, gpu_batch=16),
    "anchor": dict(config="tiny", vocab=50304,
                   overrides=dict(n_layer=4, n_head=4, n_embd=256, block_size=256),
                   cpu_batch=8, gpu_batch=8),
    "compact": dict(config="compact", vocab=50257, overrides={}, cpu_batch=1, gpu_batch=16),
}


# -- the plain reference ---------------------------------------------------------------------

class PlainBlock(nn.Module):
    def __init__(self, width: int, heads: int, block: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.out = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.register_buffer("mask", torch.tril(torch.ones(block, block, dtype=torch.bool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        att = att.masked_fill(~self.mask[:t, :t], float("-inf")).softmax(dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, c))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class PlainGPT(nn.Module):
    def __init__(self, vocab: int, block: int, layers: int, heads: int, width: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(block, width)
        self.blocks = nn.Sequential(*(PlainBlock(width, heads, block) for _ in range(layers)))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))


def plain_loop(tokens_path: str, vocab: int, shape: dict, batch: int, steps: int, warmup: int,
               device: torch.device, bf16: bool, compile_model: bool) -> tuple[list[float], float]:
    """Tokens/s of each step after warm-up, and the first step's seconds."""
    torch.manual_seed(0)
    model = PlainGPT(vocab, shape["block_size"], shape["n_layer"], shape["n_head"],
                     shape["n_embd"]).to(device)
    step_model = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    data = np.memmap(tokens_path, dtype=np.uint16 if vocab <= 65536 else np.uint32, mode="r")
    rng = np.random.default_rng(0)
    block = shape["block_size"]
    times, first = [], 0.0
    for step in range(warmup + steps):
        started = time.perf_counter()
        ix = rng.integers(0, len(data) - block - 1, size=batch)
        chunk = torch.from_numpy(np.stack([data[i:i + block + 1] for i in ix]).astype(np.int64))
        x, y = chunk[:, :-1].to(device), chunk[:, 1:].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = step_model(x)
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        elapsed = time.perf_counter() - started
        if step == 0:
            first = elapsed
        if step >= warmup:
            times.append(batch * block / elapsed)
    return times, first


# -- ours ------------------------------------------------------------------------------------

def ours(tokens_dir: str, name: str, overrides: dict, batch: int, steps: int, warmup: int,
         device: str, dtype: str, compile_model: bool) -> tuple[list[float], float, list]:
    model_dir = tempfile.mkdtemp(prefix="bench-train-")
    try:
        cfg = TrainConfig(batch_size=batch, grad_accum=1, max_steps=warmup + steps,
                          warmup_steps=10, log_interval=1, eval_interval=10**9, eval_iters=1,
                          ckpt_interval=10**9, dtype=dtype, compile=compile_model, seed=0)
        train(tokens_dir, model_dir, name, cfg, device=device, model_overrides=overrides,
              resume=False, log=None)
        log = [e for e in read_log(model_dir) if e["kind"] == "train"]
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    first = log[0]["elapsed_s"]
    timed = [e for e in log if e["step"] > warmup]
    return [e["tokens_per_s"] for e in timed], first, [e["mfu"] for e in timed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="tiny,anchor,compact")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", help="comma list of fp32, bf16")
    parser.add_argument("--compile", choices=("no", "yes", "both"), default="no")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default: 30 tiny, 6 anchor, 4 compact on CPU; 30 GPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed first steps (default 2; 5 when compiling)")
    parser.add_argument("--batch", type=int, default=None, help="override the shape's batch")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain loop")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    compiles = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    default_steps = {"tiny": 30, "anchor": 6, "compact": 4} if device.type == "cpu" else {}
    print(f"# torch {torch.__version__}, {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"))
    rows = []
    work = tempfile.mkdtemp(prefix="bench-tokens-")
    try:
        for name in args.configs.split(","):
            spec = SHAPES[name]
            shape = model_config(spec["config"], spec["vocab"], **spec["overrides"]).to_dict()
            batch = args.batch or spec["cpu_batch" if device.type == "cpu" else "gpu_batch"]
            steps = args.steps or default_steps.get(name, 30)
            with torch.device("meta"):
                meta_model = GPT(model_config(spec["config"], spec["vocab"], **spec["overrides"]))
            flops = meta_model.flops_per_token()
            n_params = meta_model.num_params()
            tokens_dir = os.path.join(work, name)
            n_tokens = max(1 << 20, 4 * batch * (shape["block_size"] + 1) * (steps + 10))
            ids = np.random.default_rng(0).integers(0, spec["vocab"], n_tokens)
            write_tokens(tokens_dir, ids, ids[: 4 * (shape["block_size"] + 1) * batch],
                         spec["vocab"], 0)
            for dtype in args.dtype.split(","):
                for compiled in compiles:
                    warmup = args.warmup if args.warmup is not None else (5 if compiled else 2)
                    label = f"{name} {dtype}{' compile' if compiled else ''}"
                    tokens_per_step = batch * shape["block_size"]
                    speeds, first, _ = ours(tokens_dir, spec["config"], spec["overrides"],
                                              batch, steps, warmup, args.device, dtype, compiled)
                    peak = peak_flops(device, dtype)
                    impls = [("ours", speeds, first)]
                    if not args.no_reference:
                        plain_speeds, plain_first = plain_loop(
                            os.path.join(tokens_dir, "train.bin"),
                            meta_model.config.padded_vocab_size, shape, batch, steps, warmup,
                            device, dtype == "bf16", compiled)
                        impls.append(("plain", plain_speeds, plain_first))
                    for impl, step_speeds, first_step in impls:
                        tok_s = statistics.median(step_speeds)
                        row = {"shape": name, "impl": impl, "dtype": dtype, "compile": compiled,
                               "params_M": round(n_params / 1e6, 2), "batch": batch,
                               "block": shape["block_size"], "vocab": spec["vocab"],
                               "tokens_per_step": tokens_per_step, "steps": len(step_speeds),
                               "tokens_per_s": round(tok_s, 1),
                               "first_step_s": round(first_step, 2),
                               "mfu": round(flops * tok_s / peak, 4) if peak else None}
                        rows.append(row)
                        print(f"{label:<24} {impl:<6} {tok_s:>12,.0f} tokens/s  first step "
                              f"{first_step:6.1f} s" + (f"  MFU {row['mfu']:.1%}" if peak else ""),
                              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| shape | params | batch × block | vocab | dtype | compile | ours tokens/s | "
          "plain tokens/s | ours / plain | MFU (ours) | first step (ours) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    keyed = {(r["shape"], r["dtype"], r["compile"], r["impl"]): r for r in rows}
    for (shape_name, dtype, compiled, impl), row in keyed.items():
        if impl != "ours":
            continue
        plain = keyed.get((shape_name, dtype, compiled, "plain"))
        ratio = f"{row['tokens_per_s'] / plain['tokens_per_s']:.2f}" if plain else "—"
        plain_speed = f"{plain['tokens_per_s']:,.0f}" if plain else "—"
        mfu = f"{row['mfu']:.1%}" if row["mfu"] else "—"
        print(f"| {shape_name} | {row['params_M']}M | {row['batch']} × {row['block']} | "
              f"{row['vocab']:,} | {dtype} | {'yes' if compiled else 'no'} | "
              f"{row['tokens_per_s']:,.0f} | {plain_speed} | {ratio} | {mfu} | "
              f"{row['first_step_s']} s |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"torch": torch.__version__, "device": str(device), "rows": rows}, handle,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
