"""`webtext build` on the embedded sample, end to end, as a user runs it (a subprocess).

One full build (every stage, the tiny model included) is shared by the module;
the other builds stop after the shards (`--until shards`) to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from webtext_pipeline.records import DOCS_SCHEMA, SCHEMA_VERSION

WEBTEXT = [sys.executable, "-m", "webtext_pipeline.cli"]
BUILD = [*WEBTEXT, "build", "--cutoff", "2017-12"]
TIMEOUT = 600


def webtext(*args: str, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*WEBTEXT, *args], capture_output=True, text=True, timeout=timeout)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "docs").glob("shard-*.parquet"))}


@pytest.fixture(scope="module")
def full_build(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("full") / "out"
    run = subprocess.run([*BUILD, "--out", str(out)], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return out, run


@pytest.fixture(scope="module")
def manifest(full_build) -> dict:
    out, _ = full_build
    return json.loads((out / "MANIFEST.json").read_text())


def test_the_books_balance(manifest):
    funnel = manifest["funnel"]
    assert funnel["balanced"], funnel["equation"]
    assert funnel["stages_balanced"] and funnel["chained"]
    assert [s["stage"] for s in funnel["stages"]] == [
        "links", "fetch", "extract", "clean", "dedup", "shards"]
    assert funnel["links"] == funnel["documents"] + funnel["rejected"]
    assert manifest["corpus"]["rows"] == funnel["documents"] > 0
    assert manifest["corpus"]["rows_match_funnel"]


def test_every_kind_of_drop_occurs(manifest):
    reasons = {s["stage"]: set(s["rejects"]) for s in manifest["funnel"]["stages"]}
    assert {"low_score", "self_post", "wikipedia", "after_cutoff", "bad_json",
            "truncated_file"} <= reasons["links"]
    assert {"http_404", "not_html"} <= reasons["fetch"]
    assert {"wikipedia", "no_text"} & reasons["extract"]
    assert {"not_english", "too_short"} <= reasons["clean"]
    assert {"exact_duplicate", "near_duplicate"} <= reasons["dedup"]


def test_reject_files_hold_every_drop(full_build, manifest):
    out, _ = full_build
    rows = duckdb.sql(
        f"select stage, count(*) from read_parquet('{out}/rejects/*.parquet') group by stage"
    ).fetchall()
    on_disk = dict(rows)
    for stage in manifest["funnel"]["stages"]:
        if stage["stage"] != "shards":
            assert on_disk.get(stage["stage"], 0) == stage["rejected"], stage["stage"]


def test_shards_read_back_in_pyarrow_and_duckdb(full_build, manifest):
    out, _ = full_build
    shards = sorted((out / "docs").glob("shard-*.parquet"))
    assert [p.name for p in shards] == [
        f"shard-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    table = pq.read_table(out / "docs")
    assert table.schema.remove_metadata().equals(DOCS_SCHEMA)
    meta = pq.read_metadata(shards[0]).metadata
    assert meta[b"webtext.schema_version"] == SCHEMA_VERSION.encode()
    assert pq.ParquetFile(shards[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    ids = table.column("id").to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert set(table.column("split").to_pylist()) == {"train", "val"}
    assert "wikipedia.org" not in set(table.column("domain").to_pylist())
    count = duckdb.sql(f"select count(*) from read_parquet('{out}/docs/*.parquet')").fetchall()[0]
    assert count[0] == manifest["corpus"]["rows"] == table.num_rows
    for entry in manifest["shards"]:
        assert (out / entry["path"]).stat().st_size == entry["bytes"]


def test_datasets_loads_the_corpus_as_it_is(full_build, manifest, tmp_path):
    """The dataset card's promise: `load_dataset("parquet", data_dir=OUT/docs)`, offline."""
    out, _ = full_build
    script = (
        "import sys, datasets\n"
        "ds = datasets.load_dataset('parquet', data_dir=sys.argv[1], cache_dir=sys.argv[2])\n"
        "card = datasets.load_dataset(sys.argv[3], cache_dir=sys.argv[2])\n"
        "print(ds['train'].num_rows, card['train'].num_rows)\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", script, str(out / "docs"), str(tmp_path),
                          str(out)], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = manifest["corpus"]["rows"]
    assert run.stdout.split() == [str(rows), str(rows)]
    assert sorted(p.name for p in (out / "docs").iterdir()) == [
        e["path"].split("/")[-1] for e in manifest["shards"]]


def test_report_card_tokens_and_model(full_build, manifest):
    out, run = full_build
    page = (out / "report" / "index.html").read_text()
    assert page.count("<svg") >= 5 and "Model validation" in page
    assert json.loads((out / "report" / "build.json").read_text())["funnel"]["balanced"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "data_files" in card
    meta = json.loads((out / "tokens" / "meta.json").read_text())
    assert meta["train"]["tokens"] > 0 and meta["val"]["tokens"] > 0
    assert meta["documents"] == manifest["corpus"]["rows"]
    assert (out / "tokens" / "train.bin").stat().st_size == 2 * meta["train"]["tokens"]
    assert (out / "model" / "model.safetensors").is_file()
    validation = json.loads((out / "model" / "validation.json").read_text())
    assert validation["passed"], validation["verdict"]
    for stage in ("links", "fetch", "extract", "dedup", "shards"):
        assert f"build: {stage} " in run.stdout


def test_inspect_prints_the_summary(full_build, manifest):
    out, _ = full_build
    run = webtext("inspect", str(out))
    assert run.returncode == 0, run.stderr
    assert f"{manifest['corpus']['rows']:,}" in run.stdout
    top = duckdb.sql(f"select domain from read_parquet('{out}/docs/*.parquet') group by domain "
                     "order by count(*) desc, domain limit 1").fetchall()[0][0]
    assert top in run.stdout


def test_unchanged_rerun_reuses_every_stage(full_build):
    out, _ = full_build
    before = shard_bytes(out)
    run = subprocess.run([*BUILD, "--out", str(out)], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-2000:]
    for stage in ("links", "fetch", "extract", "dedup", "shards"):
        assert f"build: {stage} reused" in run.stdout, run.stdout
    assert shard_bytes(out) == before


def test_second_build_is_byte_identical(full_build, manifest, tmp_path):
    out, _ = full_build
    again = tmp_path / "again"
    run = subprocess.run([*BUILD, "--out", str(again), "--until", "shards"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert shard_bytes(again) == shard_bytes(out)
    second = json.loads((again / "MANIFEST.json").read_text())
    assert second["shards"] == manifest["shards"]
    assert second["corpus"]["sha256"] == manifest["corpus"]["sha256"]


def test_killed_build_resumes_to_the_same_shards(full_build, tmp_path):
    out, _ = full_build
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*BUILD, "--out", str(killed), "--until", "shards"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = killed / "fetched" / "_stage.json"
    deadline = time.monotonic() + TIMEOUT
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the build ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "docs").exists() or not list((killed / "docs").glob("shard-*"))
    run = subprocess.run([*BUILD, "--out", str(killed), "--until", "shards"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "build: fetch reused" in run.stdout
    assert shard_bytes(killed) == shard_bytes(out)


def _one_line_failure(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--no-such-option"], ["--no-such-option"]),
        (["--cutoff", "2017-13"], ["--cutoff", "2017-13"]),
        (["--val-fraction", "2"], ["--val-fraction"]),
        (["--per-host-delay", "-1"], ["--per-host-delay"]),
        (["--threshold", "0"], ["--threshold"]),
    ],
)
def test_bad_options_write_nothing(tmp_path, extra, needles):
    out = tmp_path / "out"
    # the last --cutoff wins, so a bad one in `extra` replaces the good default
    _one_line_failure(webtext("build", "--out", str(out), "--cutoff", "2017-12", *extra),
                      *needles)
    assert not out.exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    _one_line_failure(webtext("build", "--out", str(blocker / "out")), "--out")
    if os.geteuid() != 0:  # root writes anywhere; the file-as-parent case covers it
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _one_line_failure(webtext("build", "--out", str(locked / "out")), "--out")
        assert list(locked.iterdir()) == []


def test_output_folder_holding_a_different_build(full_build, tmp_path):
    out, _ = full_build
    before = sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*"))
    run = webtext("build", "--out", str(out), "--cutoff", "2016-12")
    _one_line_failure(run, "--out", "different build")
    assert sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    _one_line_failure(webtext("build", "--out", str(stranger)), "--out", "not a webtext build")
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]


def test_a_build_from_dumps_continues_stage_by_stage(full_build, tmp_path):
    """--dumps builds are identified by their files: the same files continue, others refuse."""
    out, _ = full_build
    dumps = tmp_path / "dumps"
    shutil.copytree(out / "sample" / "dumps", dumps)
    target = tmp_path / "out"
    for until in ("links", "fetch"):
        run = webtext("build", "--dumps", str(dumps), "--out", str(target), "--until", until,
                      "--offline", "--warc-cache", str(out / "sample" / "web"))
        assert run.returncode == 0, run.stderr[-2000:]
    assert "build: links reused" in run.stdout
    (dumps / "RS_2017-12.xz").unlink()
    _one_line_failure(webtext("build", "--dumps", str(dumps), "--out", str(target)),
                      "--out", "different build")
