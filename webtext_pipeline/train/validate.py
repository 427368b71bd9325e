"""Does the corpus train a model? The validation report for a trained checkpoint.

``validate(model_dir, tokens_dir)`` scores ``val.bin`` in consecutive windows of
the model's context, compares the loss with two baselines, samples a few
continuations of fixed prompts, draws the loss curve, and writes
``MODEL_DIR/validation.json``, ``MODEL_DIR/loss.svg`` and ``MODEL_DIR/validation.html``
(a self-contained page for the build report).

Baselines (nats per token, over exactly the tokens scored):

- ``uniform``: ln V, a model that knows nothing;
- ``unigram``: the entropy of the scored tokens' own frequencies, the best any
  context-free model could do even if fitted to the validation set itself (the
  plug-in estimate is biased low, which only makes it harder to beat).

**Pass rule**: the validation loss is at least ``margin`` nats below the unigram
baseline (``DEFAULT_MARGIN`` = 0.5 nats, i.e. a perplexity at most
e^-0.5 ≈ 61 % of the unigram perplexity). Only a model that uses context gets
below the unigram entropy at all; a clear margin shows that the tokens carry
learnable structure end to end (text → tokenizer → token files → training).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable

import numpy as np
import torch

from webtext_pipeline.train.data import TokenFiles, sequential_windows, unigram_entropy
from webtext_pipeline.train.export import load_pretrained
from webtext_pipeline.train.trainer import read_log, resolve_device

DEFAULT_MARGIN = 0.5
DEFAULT_PROMPTS = ("The", "According to the", "In a statement, the", "Residents of")
REPORT_NAME = "validation.json"
CURVE_NAME = "loss.svg"
PAGE_NAME = "validation.html"


@torch.no_grad()
def score_split(model: torch.nn.Module, files: TokenFiles, split: str = "val",
                max_tokens: int | None = 1 << 20, batch_size: int = 8,
                device: torch.device | None = None) -> tuple[float, np.ndarray]:
    """Mean next-token loss over consecutive windows of ``split`` and the targets scored."""
    device = device or next(model.parameters()).device
    block = model.config.block_size
    tokens = files.tokens(split)
    starts, n = sequential_windows(tokens, block, max_tokens)
    if n == 0:
        raise ValueError(f"{files.path(split)}: {len(tokens)} tokens, fewer than one window "
                         f"of {block + 1}")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    total = 0.0
    for first in range(0, n, batch_size):
        chunk = starts[first:first + batch_size]
        index = chunk[:, None] + np.arange(block + 1, dtype=np.int64)[None, :]
        batch = torch.from_numpy(np.asarray(tokens[index], dtype=np.int64)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1),
            reduction="sum")
        total += float(loss)
    targets = np.asarray(tokens[1:n * block + 1])
    return total / targets.size, targets


def _load_tokenizer(*dirs: str | None):
    for directory in dirs:
        if directory and os.path.isfile(os.path.join(directory, "tokenizer.json")):
            try:
                from tokenizers import Tokenizer
            except ImportError:
                return None
            return Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    return None


def _id_prompts(files: TokenFiles, count: int, length: int = 4) -> list[list[int]]:
    """Without a tokenizer: the first tokens of the first validation documents."""
    tokens = np.asarray(files.tokens("val")[: 1 << 20])
    starts = [0] + [int(i) + 1 for i in np.flatnonzero(tokens == files.eot_id)]
    prompts = []
    for start in starts:
        ids = [int(t) for t in tokens[start:start + length]]
        if len(ids) == length and files.eot_id not in ids:
            prompts.append(ids)
        if len(prompts) == count:
            break
    return prompts or [[files.eot_id]]


def sample_continuations(model: torch.nn.Module, files: TokenFiles, tokenizer=None,
                         prompts: tuple[str, ...] = DEFAULT_PROMPTS, max_new_tokens: int = 32,
                         temperature: float = 0.8, top_k: int = 40, seed: int = 0) -> list[dict]:
    """A continuation of each fixed prompt (text with a tokenizer, else token ids)."""
    device = next(model.parameters()).device
    if tokenizer is not None:
        encoded = [tokenizer.encode(p, add_special_tokens=False).ids for p in prompts]
        pairs = [(p, ids) for p, ids in zip(prompts, encoded, strict=True) if ids]
    else:
        pairs = [(None, ids) for ids in _id_prompts(files, len(prompts))]
    samples = []
    for index, (prompt, ids) in enumerate(pairs):
        generator = torch.Generator(device=device).manual_seed(seed + index)
        context = torch.tensor([ids], dtype=torch.long, device=device)
        out = model.generate(context, max_new_tokens, temperature=temperature, top_k=top_k,
                             generator=generator, stop_id=files.eot_id)
        new = [int(t) for t in out[0, len(ids):]]
        entry = {"prompt": prompt, "prompt_ids": ids, "ids": new}
        if tokenizer is not None:
            entry["text"] = tokenizer.decode(new, skip_special_tokens=False)
        samples.append(entry)
    return samples


def verdict(val_loss: float, unigram: float, uniform: float, margin: float) -> tuple[bool, str]:
    """(passed, one plain sentence)."""
    below = unigram - val_loss
    if below >= margin:
        return True, (f"PASS: validation loss {val_loss:.3f} is {below:.3f} nats below the "
                      f"unigram baseline {unigram:.3f} (required margin {margin:.2f}); "
                      f"uniform baseline {uniform:.3f}")
    if val_loss < unigram:
        why = f"only {below:.3f} nats below the unigram baseline {unigram:.3f}"
    else:
        why = f"{-below:.3f} nats above the unigram baseline {unigram:.3f}"
    return False, (f"FAIL: validation loss {val_loss:.3f} is {why}; the stage needs at least "
                   f"{margin:.2f} nats below it. Train longer or a larger config, or check "
                   f"the token files")


def validate(model_dir: str, tokens_dir: str, tokenizer_dir: str | None = None,
             margin: float = DEFAULT_MARGIN, max_tokens: int | None = 1 << 20,
             device: str = "auto", prompts: tuple[str, ...] = DEFAULT_PROMPTS,
             max_new_tokens: int = 32, seed: int = 0, write: bool = True,
             log: Callable[[str], None] | None = print) -> dict:
    """Score, compare, sample and draw; write the report files unless ``write`` is False."""
    files = TokenFiles.open(tokens_dir)
    dev = resolve_device(device)
    model, config_json = load_pretrained(model_dir, dev)
    mcfg = model.config
    if mcfg.vocab_size != files.vocab_size:
        raise ValueError(f"{model_dir}: model vocabulary {mcfg.vocab_size} ≠ token files' "
                         f"{files.vocab_size} ({tokens_dir}/meta.json)")
    val_loss, targets = score_split(model, files, "val", max_tokens, device=dev)
    uniform = math.log(files.vocab_size)
    unigram = unigram_entropy(targets, files.vocab_size)
    passed, sentence = verdict(val_loss, unigram, uniform, margin)
    tokenizer = _load_tokenizer(tokenizer_dir, model_dir)
    samples = sample_continuations(model, files, tokenizer, prompts, max_new_tokens, seed=seed)
    entries = read_log(model_dir)
    train_entries = [e for e in entries if e["kind"] == "train"]
    speeds = [e["tokens_per_s"] for e in train_entries if e["step"] > 1]
    mfus = [e["mfu"] for e in train_entries if e["step"] > 1 and e.get("mfu") is not None]
    info = config_json.get("webtext", {})
    report = {
        "model_dir": model_dir,
        "tokens_dir": tokens_dir,
        "config_name": info.get("config_name"),
        "model_config": mcfg.to_dict(),
        "n_params": model.num_params(),
        "step": info.get("step"),
        "tokens_trained": info.get("tokens"),
        "val_tokens_scored": int(targets.size),
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss),
        "baselines": {"uniform": uniform, "unigram": unigram},
        "baseline_perplexity": {"uniform": float(files.vocab_size),
                                "unigram": math.exp(unigram)},
        "margin": margin,
        "threshold": unigram - margin,
        "below_unigram": unigram - val_loss,
        "passed": passed,
        "verdict": sentence,
        "train": {
            "final_loss": train_entries[-1]["loss"] if train_entries else None,
            "tokens_per_s_median": float(np.median(speeds)) if speeds else None,
            "mfu_median": float(np.median(mfus)) if mfus else None,
            "seconds": train_entries[-1]["elapsed_s"] if train_entries else None,
        },
        "samples": samples,
        "sampling": {"temperature": 0.8, "top_k": 40, "max_new_tokens": max_new_tokens,
                     "seed": seed, "tokenizer": tokenizer is not None},
        "loss_curve": CURVE_NAME,
    }
    if write:
        svg = loss_curve_svg(entries, {"uniform ln V": uniform, "unigram": unigram,
                                       "pass threshold": unigram - margin})
        _write(os.path.join(model_dir, CURVE_NAME), svg)
        _write(os.path.join(model_dir, REPORT_NAME), json.dumps(report, indent=2) + "\n")
        _write(os.path.join(model_dir, PAGE_NAME), validation_page(report, svg))
    if log:
        log(f"validate: {sentence}")
    return report


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


# -- pictures and pages ---------------------------------------------------------------------

def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = max(high - low, 1e-9)
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def loss_curve_svg(entries: list[dict], baselines: dict[str, float], width: int = 640,
                   height: int = 360) -> str:
    """An inline SVG line chart: train loss and val loss against tokens, baselines dashed."""
    train = [(e["tokens"], e["loss"]) for e in entries if e["kind"] == "train"]
    val = [(e["tokens"], e["val_loss"]) for e in entries if e["kind"] == "eval"]
    points = train + val
    left, right, top, bottom = 56, 150, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    esc = html.escape
    if not points:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
                '<text x="20" y="30">no training log</text></svg>')
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + list(baselines.values())
    x_lo, x_hi = 0.0, max(xs) or 1.0
    y_lo, y_hi = min(ys), max(ys)
    pad = 0.05 * max(y_hi - y_lo, 1e-3)
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def sy(y: float) -> float:
        return top + (y_hi - y) / (y_hi - y_lo) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
             'stroke="#999"/>']
    for tick in _nice_ticks(y_lo, y_hi):
        y = sy(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for tick in _nice_ticks(x_lo, x_hi):
        x = sx(tick)
        label = f"{tick / 1e6:g}M" if x_hi >= 1e6 else f"{tick / 1e3:g}k"
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                     f"{label}</text>")
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">'
                 "tokens trained</text>")
    parts.append(f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2})">loss (nats/token)</text>')
    colors = ("#888", "#c0392b", "#27ae60", "#8e44ad")
    legend = [("train loss", "#2c7fb8", ""), ("val loss", "#e67e22", "")]
    for (name, value), color in zip(baselines.items(), colors, strict=False):
        y = sy(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{color}" stroke-dasharray="5 4"/>')
        legend.append((f"{name} {value:.2f}", color, "5 4"))

    def polyline(series: list[tuple[float, float]], color: str) -> None:
        if series:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in series)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                         'stroke-width="1.5"/>')
            for x, y in series if len(series) < 40 else series[-1:]:
                parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2" fill="{color}"/>')

    polyline(train, "#2c7fb8")
    polyline(val, "#e67e22")
    for row, (name, color, dash) in enumerate(legend):
        y = top + 12 + row * 16
        x = left + plot_w + 10
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{x}" x2="{x + 18}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" '
                     f'stroke-width="2"{dashes}/>')
        parts.append(f'<text x="{x + 22}" y="{y}">{esc(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def validation_section(report: dict, svg: str) -> str:
    """The report as an HTML fragment (for the build report's page)."""
    esc = html.escape
    status = "PASS" if report["passed"] else "FAIL"
    color = "#1e7b34" if report["passed"] else "#b03a2e"
    b = report["baselines"]
    rows = [
        ("model", f"{report['config_name']} · {report['n_params'] / 1e6:.2f}M parameters · "
                  f"step {report['step']} · {report['tokens_trained'] or 0:,} tokens trained"),
        ("validation loss", f"{report['val_loss']:.4f} (perplexity {report['val_perplexity']:.2f};"
                            f" {report['val_tokens_scored']:,} tokens scored)"),
        ("uniform baseline ln V", f"{b['uniform']:.4f}"),
        ("unigram baseline", f"{b['unigram']:.4f}"),
        ("pass threshold", f"{report['threshold']:.4f} (unigram − {report['margin']:.2f})"),
    ]
    speed = report["train"].get("tokens_per_s_median")
    if speed:
        mfu = report["train"].get("mfu_median")
        rows.append(("training speed", f"{speed:,.0f} tokens/s"
                     + (f", MFU {mfu:.1%}" if mfu else "")))
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    samples = []
    for s in report["samples"]:
        if "text" in s:
            samples.append(f"<li><b>{esc(s['prompt'] or '')}</b>{esc(s['text'])}</li>")
        else:
            samples.append(f"<li><b>{esc(str(s['prompt_ids']))}</b> → {esc(str(s['ids']))}</li>")
    return (
        f'<section id="model-validation"><h2>Model validation</h2>'
        f'<p style="color:{color};font-weight:bold">{status}: {esc(report["verdict"][6:])}</p>'
        f"<table>{table}</table><h3>Loss curve</h3>{svg}"
        f"<h3>Sampled continuations</h3><ul>{''.join(samples)}</ul></section>"
    )


def report_fragment(model_dir: str) -> str:
    """The saved report of MODEL_DIR as a build-report section (``<section id=
    "model-validation">``), for ``report.add_report_section(out, "Model validation", …)``."""
    with open(os.path.join(model_dir, REPORT_NAME), encoding="utf-8") as handle:
        report = json.load(handle)
    with open(os.path.join(model_dir, CURVE_NAME), encoding="utf-8") as handle:
        svg = handle.read()
    return validation_section(report, svg)


def validation_page(report: dict, svg: str) -> str:
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>webtext: model "
        "validation</title><style>body{font-family:sans-serif;max-width:860px;margin:2em auto}"
        "th{text-align:left;padding-right:1em}li{margin:.4em 0;white-space:pre-wrap}</style>"
        f"</head><body>{validation_section(report, svg)}</body></html>\n"
    )
