"""The train stage end to end on the CPU: a real tokenizer, real token files, a real model.

The corpus is the embedded sample web's English article text, tokenized by a
byte-level BPE (512 ids) trained here with `tokenizers`; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers must never reach for the hub here
torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
tokenizers = pytest.importorskip("tokenizers")

from safetensors.torch import load_file  # noqa: E402

from webtext_pipeline.links.sample import sample_articles  # noqa: E402
from webtext_pipeline.sample_web import article_paragraphs  # noqa: E402
from webtext_pipeline.train import TrainUsageError  # noqa: E402
from webtext_pipeline.train.commands import (  # noqa: E402
    add_train_options,
    add_validate_options,
    run_train,
    run_validate,
)
from webtext_pipeline.train.config import ModelConfig, train_config  # noqa: E402
from webtext_pipeline.train.data import TokenFiles, unigram_entropy, write_tokens  # noqa: E402
from webtext_pipeline.train.export import load_pretrained, save_pretrained  # noqa: E402
from webtext_pipeline.train.model import GPT  # noqa: E402
from webtext_pipeline.train.stage import run_stage  # noqa: E402
from webtext_pipeline.train.trainer import (  # noqa: E402
    CheckpointMismatch,
    checkpoint_path,
    read_log,
    train,
)
from webtext_pipeline.train.validate import report_fragment, validate  # noqa: E402

STEPS = 60


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: the tiny model gains little from more, and on a shared 2-core
    machine two spinning OpenMP threads slow down 20-fold whenever another process runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_corpus(root) -> tuple[str, str]:
    """tokenizer/ (tokenizer.json, vocab.json, merges.txt) and tokens/ under ROOT."""
    docs = ["\n\n".join(article_paragraphs(article.url, 6)) for article in sample_articles()]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(docs, vocab_size=512, min_frequency=2,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer_dir = os.path.join(root, "tokenizer")
    os.makedirs(tokenizer_dir)
    bpe.save(os.path.join(tokenizer_dir, "tokenizer.json"))
    bpe.save_model(tokenizer_dir)
    eot = bpe.token_to_id("<|endoftext|>")
    encoded = [e.ids for e in bpe.encode_batch(docs)]

    def joined(indices):
        return np.array([t for i in indices for t in encoded[i] + [eot]])

    val = [i for i in range(len(docs)) if i % 10 == 0]
    train_ids = [i for i in range(len(docs)) if i % 10]
    tokens_dir = os.path.join(root, "tokens")
    write_tokens(tokens_dir, joined(train_ids), joined(val), bpe.get_vocab_size(), eot,
                 tokenizer="byte-level BPE, 512")
    return tokenizer_dir, tokens_dir


def _cfg(**overrides):
    base = dict(max_steps=STEPS, log_interval=5, eval_interval=20, ckpt_interval=20,
                eval_iters=4, warmup_steps=10)
    return train_config("tiny", **{**base, **overrides})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-corpus")
    tokenizer_dir, tokens_dir = _write_corpus(root)
    return {"root": str(root), "tokenizer": tokenizer_dir, "tokens": tokens_dir}


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("model-a"))
    result = train(corpus["tokens"], model_dir, "tiny", _cfg(), device="cpu",
                   tokenizer_dir=corpus["tokenizer"], log=None)
    return result, model_dir


def test_tiny_trains_and_the_loss_falls(trained, corpus):
    result, model_dir = trained
    assert result.step == STEPS and result.stopped_by == "max_steps"
    assert result.tokens == STEPS * 16 * 64
    entries = read_log(model_dir)
    losses = [e["loss"] for e in entries if e["kind"] == "train"]
    assert abs(losses[0] - math.log(512)) < 0.3  # starts near uniform
    assert losses[-1] < losses[0] - 2.0
    val = [e["val_loss"] for e in entries if e["kind"] == "eval"]
    assert [e["step"] for e in entries if e["kind"] == "eval"] == [20, 40, 60]
    assert val == sorted(val, reverse=True)
    files = TokenFiles.open(corpus["tokens"])
    assert result.val_loss < unigram_entropy(files.tokens("val"), 512) - 1.0
    assert all(e["tokens_per_s"] > 0 for e in entries if e["kind"] == "train")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.json",
                 "merges.txt", "tokenizer_config.json", "train_log.jsonl"):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    assert os.path.isfile(checkpoint_path(model_dir))


def test_killed_run_resumes_to_the_same_weights(trained, corpus, tmp_path):
    """Same seed → same run; a run killed after step 30 (last checkpoint: 20) and rerun
    ends bit-identical to the uninterrupted one."""
    _, reference_dir = trained
    model_dir = str(tmp_path / "model-b")

    def kill_at_30(line: str) -> None:
        if line.startswith("step     30 | loss"):
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train(corpus["tokens"], model_dir, "tiny", _cfg(), device="cpu", log=kill_at_30)
    assert max(e["step"] for e in read_log(model_dir)) == 30
    assert not os.path.exists(os.path.join(model_dir, "model.safetensors"))
    lines: list[str] = []
    result = train(corpus["tokens"], model_dir, "tiny", _cfg(), device="cpu", log=lines.append)
    assert result.resumed_from == 20
    assert "resumed at step 20" in lines[0]
    ours = load_file(os.path.join(model_dir, "model.safetensors"))
    reference = load_file(os.path.join(reference_dir, "model.safetensors"))
    assert ours.keys() == reference.keys()
    for key, tensor in reference.items():
        assert torch.equal(ours[key], tensor), key
    log = read_log(model_dir)
    steps = [(e["kind"], e["step"]) for e in log]
    assert len(steps) == len(set(steps))  # the killed run's tail was dropped, not duplicated
    assert [e["val_loss"] for e in log if e["kind"] == "eval"] == [
        e["val_loss"] for e in read_log(reference_dir) if e["kind"] == "eval"
    ]
    # a finished run rerun does no more steps, and raising the limit continues it
    again = train(corpus["tokens"], model_dir, "tiny", _cfg(), device="cpu", log=None)
    assert again.step == STEPS and again.resumed_from == STEPS
    more = train(corpus["tokens"], model_dir, "tiny", _cfg(max_steps=STEPS + 5), device="cpu",
                 log=None)
    assert more.step == STEPS + 5


def test_checkpoint_of_other_tokens_is_refused(trained, corpus, tmp_path):
    _, model_dir = trained
    files = TokenFiles.open(corpus["tokens"])
    other = str(tmp_path / "other-tokens")
    write_tokens(other, np.asarray(files.tokens("train"))[:-7], files.tokens("val"), 512,
                 files.eot_id)
    with pytest.raises(CheckpointMismatch, match="other token files"):
        train(other, model_dir, "tiny", _cfg(), device="cpu", log=None)
    with pytest.raises(CheckpointMismatch, match=r"holds another model \(tiny, 2 x 64"):
        train(corpus["tokens"], model_dir, "tiny", _cfg(), device="cpu",
              model_overrides={"n_embd": 32}, log=None)


def test_transformers_gives_the_same_logits(trained, corpus):
    transformers = pytest.importorskip("transformers")
    _, model_dir = trained
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(model_dir, output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    ours, _ = load_pretrained(model_dir)
    tokens = TokenFiles.open(corpus["tokens"]).tokens("val")
    idx = torch.from_numpy(np.asarray(tokens[:128], dtype=np.int64)).view(2, 64)
    with torch.no_grad():
        expected = hf.eval()(idx).logits
        logits, _ = ours(idx)
    assert torch.allclose(logits, expected, atol=1e-5, rtol=1e-5)
    pipe = transformers.pipeline("text-generation", model=model_dir, device="cpu")
    out = pipe("According to the", max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert out.startswith("According to the") and len(out) > len("According to the")


def test_export_traps_bias_free_compiled_and_mask_buffers(tmp_path):
    """No biases → zeros; `_orig_mod.` keys (torch.compile) and a nanoGPT-style causal mask
    buffer (`attn.bias`, not to be confused with `attn.c_attn.bias`) are handled."""
    transformers = pytest.importorskip("transformers")
    config = ModelConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=32,
                         bias=False)
    torch.manual_seed(0)
    model = GPT(config)
    state = torch.compile(model).state_dict()  # wrapping only: nothing is compiled
    assert all(k.startswith("_orig_mod.") for k in state)
    state["_orig_mod.transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))
    save_pretrained(state, config, str(tmp_path), eot_id=299)
    hf, info = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path),
                                                            output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert hf.config.vocab_size == 320  # padded to a multiple of 64
    assert torch.count_nonzero(hf.transformer.h[1].attn.c_attn.bias) == 0
    idx = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model.eval()(idx)[0], hf.eval()(idx).logits, atol=1e-5)
    reloaded, _ = load_pretrained(str(tmp_path))
    assert not reloaded.config.bias
    with torch.no_grad():
        assert torch.equal(reloaded(idx)[0], model(idx)[0])


def test_validate_passes_with_report_curve_and_samples(trained, corpus):
    _, model_dir = trained
    report = validate(model_dir, corpus["tokens"], log=None)
    assert report["passed"] and report["verdict"].startswith("PASS")
    assert report["val_loss"] < report["baselines"]["unigram"] - report["margin"]
    assert report["baselines"]["uniform"] == pytest.approx(math.log(512))
    assert report["val_perplexity"] == pytest.approx(math.exp(report["val_loss"]))
    assert report["step"] == STEPS and report["config_name"] == "tiny"
    assert len(report["samples"]) == 4
    assert all(s["text"] and s["ids"] for s in report["samples"])  # tokenizer beside the model
    with open(os.path.join(model_dir, "validation.json"), encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["val_loss"] == report["val_loss"]
    svg = ET.parse(os.path.join(model_dir, "loss.svg")).getroot()
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}polyline"))) == 2
    with open(os.path.join(model_dir, "validation.html"), encoding="utf-8") as handle:
        page = handle.read()
    assert "PASS" in page and "<svg" in page
    fragment = report_fragment(model_dir)
    assert fragment.startswith('<section id="model-validation">') and fragment in page
    assert validate(model_dir, corpus["tokens"], write=False, log=None) == report  # deterministic


def test_validate_says_plainly_when_it_fails(corpus, tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=512, block_size=64, n_layer=1, n_head=1, n_embd=16)
    files = TokenFiles.open(corpus["tokens"])
    save_pretrained(GPT(config), config, str(tmp_path), eot_id=files.eot_id)
    report = validate(str(tmp_path), corpus["tokens"], log=None)
    assert not report["passed"]
    assert report["verdict"].startswith("FAIL: validation loss")
    assert "above the unigram baseline" in report["verdict"]
    assert "text" not in report["samples"][0] and report["samples"][0]["prompt_ids"]


def _parser(add):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="out")
    add(parser)
    return parser


def test_commands_train_and_validate(corpus, tmp_path, capsys):
    out = str(tmp_path / "out")
    os.makedirs(out)
    os.symlink(corpus["tokens"], os.path.join(out, "tokens"))
    os.symlink(corpus["tokenizer"], os.path.join(out, "tokenizer"))
    args = _parser(add_train_options).parse_args(
        ["--out", out, "--config", "tiny", "--max-steps", "40", "--device", "cpu"])
    lines: list[str] = []
    assert run_train(args, log=lines.append) == 0
    assert any(line.startswith("validate: PASS") for line in lines)
    assert os.path.isfile(os.path.join(out, "model", "tokenizer.json"))
    args = _parser(add_validate_options).parse_args(
        ["--model", os.path.join(out, "model"), "--tokens", corpus["tokens"], "--margin", "50"])
    assert run_validate(args, log=lines.append) == 1
    assert lines[-2].startswith("validate: FAIL")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tokens", "/nonexistent"], "--tokens /nonexistent: no such directory"),
        (["--max-steps", "5", "--device", "cuda"], "--device cuda: no CUDA device"),
        (["--max-steps", "5", "--tokenizer", "/"], "--tokenizer /: no tokenizer.json"),
    ],
)
def test_commands_refuse_bad_input_in_one_line(corpus, argv, message):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    argv = ["--tokens", corpus["tokens"], "--config", "tiny", *argv]
    args = _parser(add_train_options).parse_args(argv)
    with pytest.raises(TrainUsageError, match=message.replace("(", r"\(")):
        run_train(args, log=lambda _line: None)


def test_build_stage_trains_validates_and_reuses(corpus, tmp_path):
    out = str(tmp_path)
    os.symlink(corpus["tokens"], os.path.join(out, "tokens"))
    os.symlink(corpus["tokenizer"], os.path.join(out, "tokenizer"))
    summary = run_stage(out, max_steps=50, log=None)
    assert summary["validation"]["passed"]
    assert summary["train"]["step"] == 50
    assert os.path.isfile(os.path.join(out, "model", "validation.html"))
    again = run_stage(out, max_steps=50, log=None)
    assert again["train"]["resumed_from"] == 50  # nothing retrained
    assert again["validation"]["val_loss"] == summary["validation"]["val_loss"]


def test_stops_by_tokens_and_by_minutes(corpus, tmp_path):
    by_tokens = train(corpus["tokens"], str(tmp_path / "t"), "tiny",
                      train_config("tiny", max_tokens=10 * 1024 + 1, eval_iters=1), device="cpu",
                      log=None)
    assert (by_tokens.step, by_tokens.stopped_by) == (11, "max_tokens")
    lines: list[str] = []
    by_time = train(corpus["tokens"], str(tmp_path / "m"), "tiny",
                    train_config("tiny", max_minutes=0.01, eval_iters=1), device="cpu",
                    log=lines.append)
    assert by_time.stopped_by == "max_minutes" and by_time.seconds >= 0.6
    state = torch.load(checkpoint_path(str(tmp_path / "m")), weights_only=True)
    if by_time.step > 8:  # the schedule's horizon was measured after a few timed steps
        assert state["horizon"] >= 8 and any("ms/step → schedule of" in x for x in lines)
    assert read_log(str(tmp_path / "m"))[-2]["step"] == by_time.step  # last step logged
