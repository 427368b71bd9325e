"""The per-stage commands a user runs by hand: fetch, extract, dedup, tokenizer, tokenize.

They run on the output of one `webtext build --until shards` of the embedded sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from webtext_pipeline.cli import main
from webtext_pipeline.extract import extract_text
from webtext_pipeline.sample_web import sample_pages

RUNNER = ["--runner", "DirectRunner"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "out"
    assert main(["build", "--out", str(out), "--until", "shards", *RUNNER]) == 0
    return out


def rows(folder: Path, pattern: str) -> int:
    return sum(pq.read_metadata(p).num_rows for p in folder.glob(pattern))


def test_extract_prints_the_pipeline_text(tmp_path, capsys):
    page = next(p for p in sample_pages() if p.status == 200 and "html" in p.content_type)
    path = tmp_path / "page.html"
    path.write_bytes(page.body)
    assert main(["extract", str(path), "--url", page.url]) == 0
    expected = extract_text(page.body.decode("utf-8"), page.url)
    assert expected and capsys.readouterr().out.rstrip("\n") == expected.rstrip("\n")


def test_fetch_command_replays_the_sample_web_offline(built, tmp_path, capsys):
    out = tmp_path / "fetched"
    args = ["fetch", "--links", str(built / "links"), "--out", str(out), "--offline",
            "--warc-cache", str(built / "sample" / "web"), *RUNNER]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "(balanced)" in printed
    links = rows(built / "links", "part-*.parquet")
    fetched = rows(out / "fetched", "part-*.parquet")
    rejected = rows(out / "rejects", "fetch-part-*.parquet")
    assert links == fetched + rejected and fetched == rows(built / "fetched", "part-*.parquet")
    assert main(args) == 0
    assert "reused the finished output" in capsys.readouterr().out


def test_dedup_command(built, tmp_path, capsys):
    out = tmp_path / "dedup"
    assert main(["dedup", "--in", str(built / "clean"), "--out", str(out), "--threshold",
                 "0.8", *RUNNER]) == 0
    printed = capsys.readouterr().out
    assert "(balanced)" in printed and "LSH layout" in printed
    kept = rows(out / "docs", "part-*.parquet")
    assert kept == rows(built / "dedup", "part-*.parquet")
    assert rows(built / "clean", "part-*.parquet") == kept + rows(out / "rejects", "dedup-*")


def test_tokenizer_train_then_tokenize(built, capsys):
    assert main(["tokenizer", "train", "--out", str(built), "--vocab-size", "400"]) == 0
    assert (built / "tokenizer" / "tokenizer.json").is_file()
    assert main(["tokenize", "--out", str(built), "--workers", "2"]) == 0
    meta = json.loads((built / "tokens" / "meta.json").read_text())
    assert meta["vocab_size"] <= 400 and meta["dtype"] == "uint16"
    assert meta["documents"] == rows(built / "docs", "shard-*.parquet")
    assert (built / "tokens" / "val.bin").stat().st_size == 2 * meta["val"]["tokens"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["fetch", "--per-host-delay", "-1"], "--per-host-delay"),
        (["fetch", "--links", "/nonexistent/links"], "--links /nonexistent/links"),
        (["dedup", "--in", "/nonexistent", "--threshold", "2"], "--threshold"),
        (["extract", "/nonexistent/page.html"], "/nonexistent/page.html"),
        (["tokenize", "--tokenizer", "/nonexistent/tok"], "--"),
    ],
)
def test_stage_commands_bad_input(tmp_path, capsys, argv, needle):
    out = ["--out", str(tmp_path / "out")] if argv[0] != "extract" else []
    assert main([*argv, *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
