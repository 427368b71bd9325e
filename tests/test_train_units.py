"""Fast unit tests of the train stage's parts: configs, schedule, windows, baselines, export
name rules, the pass rule and the loss-curve picture."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from webtext_pipeline.train.config import (
    CONFIG_NAMES,
    ModelConfig,
    TrainConfig,
    model_config,
    train_config,
)
from webtext_pipeline.train.data import (
    TokenFiles,
    TokenFilesError,
    gather_windows,
    sequential_windows,
    unigram_cross_entropy,
    unigram_entropy,
    window_starts,
    write_tokens,
)


def test_named_configs_and_overrides():
    assert CONFIG_NAMES == ("tiny", "compact", "gpt2-124m")
    gpt2 = model_config("gpt2-124m", 50257)
    assert (gpt2.n_layer, gpt2.n_head, gpt2.n_embd, gpt2.block_size) == (12, 12, 768, 1024)
    assert gpt2.padded_vocab_size == 50304
    assert model_config("tiny", 512, block_size=32).block_size == 32
    with pytest.raises(ValueError, match="unknown config 'huge'"):
        model_config("huge", 512)
    with pytest.raises(ValueError, match="not a multiple of n_head"):
        ModelConfig(vocab_size=10, n_embd=10, n_head=3)
    # a stop given on the command line replaces the preset's step limit
    cfg = train_config("compact", max_minutes=30, batch_size=None)
    assert cfg.max_steps is None and cfg.max_minutes == 30 and cfg.batch_size == 16
    assert train_config("tiny", max_steps=5).max_steps == 5
    with pytest.raises(ValueError, match="no stop given"):
        TrainConfig(max_steps=None)
    with pytest.raises(ValueError, match="dtype 'fp8'"):
        TrainConfig(dtype="fp8")
    assert ModelConfig.from_dict({**gpt2.to_dict(), "unknown": 1}) == gpt2
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_parameter_counts():
    torch = pytest.importorskip("torch")
    from webtext_pipeline.train.model import GPT

    with torch.device("meta"):  # no memory, no init cost
        gpt2 = GPT(model_config("gpt2-124m", 50257))
        compact = GPT(model_config("compact", 50257))
    # transformers' GPT-2 small has 124,439,808 parameters; padding adds 47 rows of 768
    assert gpt2.num_params(non_embedding=False) == 124_439_808 + 47 * 768
    assert 20e6 < compact.num_params() < 100e6  # "tens of millions"
    assert gpt2.flops_per_token() == 6 * gpt2.num_params() + 12 * 12 * 768 * 1024


def test_learning_rate_schedule():
    pytest.importorskip("torch")
    from webtext_pipeline.train.trainer import learning_rate, planned_steps

    cfg = TrainConfig(learning_rate=1e-3, warmup_steps=10, max_steps=100, min_lr_ratio=0.1)
    lrs = [learning_rate(s, cfg, 100) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(a >= b for a, b in zip(lrs[10:100], lrs[11:101], strict=False))
    assert lrs[100] == pytest.approx(1e-4) and lrs[119] == pytest.approx(1e-4)
    assert learning_rate(50, cfg, None) == 1e-3  # minutes-only before the horizon is known
    assert planned_steps(TrainConfig(max_steps=None, max_tokens=10_000), 1000) == 10
    assert planned_steps(TrainConfig(max_steps=7, max_tokens=10_000), 1000) == 7
    assert planned_steps(TrainConfig(max_steps=None, max_minutes=1.0), 1000) is None


def test_windows_are_fixed_by_seed_and_step():
    a = window_starts(1000, 64, 8, seed=1, step=5, micro_step=0)
    assert np.array_equal(a, window_starts(1000, 64, 8, seed=1, step=5, micro_step=0))
    assert not np.array_equal(a, window_starts(1000, 64, 8, seed=1, step=6, micro_step=0))
    assert not np.array_equal(a, window_starts(1000, 64, 8, seed=1, step=5, micro_step=1))
    many = window_starts(70, 64, 1000, seed=0, step=0)
    assert many.min() == 0 and many.max() == 70 - 64 - 1  # every window fits
    tokens = np.arange(100, dtype=np.uint16)
    batch = gather_windows(tokens, np.array([0, 10]), 4)
    assert batch.dtype == np.int64 and batch.tolist() == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]
    starts, n = sequential_windows(tokens, 16)
    assert n == 6 and starts.tolist() == [0, 16, 32, 48, 64, 80]
    assert sequential_windows(tokens, 16, max_tokens=40)[1] == 2
    assert sequential_windows(tokens[:10], 16)[1] == 0


def test_baselines():
    uniform = np.tile(np.arange(8), 100)
    assert unigram_entropy(uniform, 16) == pytest.approx(math.log(8))
    assert unigram_entropy(np.zeros(50, dtype=np.uint16), 4) == 0.0
    # the train unigram scores val at least as badly as val's own entropy
    rng = np.random.default_rng(0)
    train = rng.zipf(1.5, 5000) % 64
    val = rng.zipf(1.5, 2000) % 64
    assert unigram_cross_entropy(train, val, 64) >= unigram_entropy(val, 64)


def test_token_files_are_checked(tmp_path):
    with pytest.raises(TokenFilesError, match="no such token directory"):
        TokenFiles.open(str(tmp_path / "absent"))
    files = write_tokens(str(tmp_path / "ok"), np.arange(300) % 50, np.arange(80) % 50, 50, 0)
    assert files.dtype == "uint16" and files.n_tokens("train") == 300
    assert files.tokens("val")[:3].tolist() == [0, 1, 2]
    with pytest.raises(TokenFilesError, match="fewer than one window"):
        files.check_block(80)
    files.check_block(79)
    big = write_tokens(str(tmp_path / "big"), [70000], [1], 70001, 0)
    assert big.dtype == "uint32" and big.tokens("train")[0] == 70000
    meta = tmp_path / "ok" / "meta.json"
    for change, message in (
        ({"dtype": "int8"}, "dtype 'int8'"),
        ({"vocab_size": 70000}, "does not fit dtype uint16"),
        ({"eot_id": 50}, "eot_id 50 outside"),
    ):
        meta.write_text(json.dumps({"vocab_size": 50, "dtype": "uint16", "eot_id": 0, **change}))
        with pytest.raises(TokenFilesError, match=message):
            TokenFiles.open(str(tmp_path / "ok"))
    meta.write_text(json.dumps({"vocab_size": 20, "dtype": "uint16", "eot_id": 0}))
    with pytest.raises(TokenFilesError, match="token id 49 ≥ vocab_size 20"):
        TokenFiles.open(str(tmp_path / "ok")).check_ids("train")
    (tmp_path / "ok" / "val.bin").write_bytes(b"\x00\x01\x02")
    with pytest.raises(TokenFilesError, match="not a whole number of uint16"):
        TokenFiles.open(str(tmp_path / "ok"))
    meta.unlink()
    with pytest.raises(TokenFilesError, match="meta.json: missing"):
        TokenFiles.open(str(tmp_path / "ok"))


def test_export_name_rules():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from webtext_pipeline.train.export import is_mask_buffer, strip_wrappers

    assert is_mask_buffer("transformer.h.0.attn.bias")
    assert is_mask_buffer("h.11.attn.masked_bias")
    assert not is_mask_buffer("transformer.h.0.attn.c_attn.bias")
    assert not is_mask_buffer("transformer.h.0.attn.c_proj.bias")
    assert strip_wrappers("_orig_mod.transformer.wte.weight") == "transformer.wte.weight"
    assert strip_wrappers("module._orig_mod.lm_head.weight") == "lm_head.weight"


def test_generate_is_seeded_and_never_emits_padding_ids():
    torch = pytest.importorskip("torch")
    from webtext_pipeline.train.model import GPT

    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=70, block_size=8, n_layer=1, n_head=2, n_embd=16)).eval()
    assert model.config.padded_vocab_size == 128
    with torch.no_grad():
        model.lm_head.weight[70:] += 5.0  # make the padding rows tempting
    start = torch.zeros(2, 1, dtype=torch.long)

    def sample(seed):
        return model.generate(start, 20, top_k=None,
                              generator=torch.Generator().manual_seed(seed))

    first = sample(3)
    assert first.shape == (2, 21) and int(first.max()) < 70  # longer than the context, too
    assert torch.equal(first, sample(3))
    assert not torch.equal(first, sample(4))


def test_attention_is_causal_and_matches_the_plain_formula():
    torch = pytest.importorskip("torch")
    from webtext_pipeline.train.model import CausalSelfAttention

    torch.manual_seed(0)
    config = ModelConfig(vocab_size=10, block_size=6, n_layer=1, n_head=2, n_embd=8)
    attn = CausalSelfAttention(config).eval()
    x = torch.randn(1, 6, 8)
    q, k, v = attn.c_attn(x).split(8, dim=2)
    q, k, v = (t.view(1, 6, 2, 4).transpose(1, 2) for t in (q, k, v))
    scores = (q @ k.transpose(-2, -1)) / 2.0
    scores = scores.masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), float("-inf"))
    plain = (scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 6, 8)
    assert torch.allclose(attn(x), attn.c_proj(plain), atol=1e-6)
    changed = x.clone()
    changed[0, 4:] += 1.0  # the future does not leak into the past
    assert torch.allclose(attn(changed)[0, :4], attn(x)[0, :4], atol=1e-6)


def test_verdict_and_loss_curve():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from webtext_pipeline.train.validate import DEFAULT_MARGIN, loss_curve_svg, verdict

    assert DEFAULT_MARGIN == 0.5
    ok, text = verdict(3.0, 5.0, 6.2, 0.5)
    assert ok and text.startswith("PASS: validation loss 3.000 is 2.000 nats below")
    ok, text = verdict(4.8, 5.0, 6.2, 0.5)
    assert not ok and "only 0.200 nats below" in text
    ok, text = verdict(5.5, 5.0, 6.2, 0.5)
    assert not ok and "0.500 nats above" in text
    entries = [{"kind": "train", "step": s, "tokens": s * 1000, "loss": 6 - s / 20}
               for s in range(1, 41)]
    entries.append({"kind": "eval", "step": 40, "tokens": 40_000, "val_loss": 4.1})
    svg = ET.fromstring(loss_curve_svg(entries, {"uniform": 6.2, "unigram <5>": 5.0}))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}polyline")) == 2
    assert any((t.text or "") == "unigram <5> 5.00" for t in svg.iter(f"{ns}text"))
    assert ET.fromstring(loss_curve_svg([], {})).tag == f"{ns}svg"
