"""MANIFEST.json: inputs, options, versions, the balanced funnel and shard checksums."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest
from test_report import FUNNEL, write_fake_corpus

from webtext_pipeline import manifest as mf


@pytest.fixture()
def build(tmp_path):
    out = tmp_path / "out"
    write_fake_corpus(out, n_docs=120, n_shards=2)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "RS_2017-01.zst").write_bytes(b"fake dump one" * 1000)
    (dumps / "RS_2017-02.zst").write_bytes(b"fake dump two" * 2000)
    inputs = [(str(dumps / "RS_2017-02.zst"), 26000),
              {"path": str(dumps / "RS_2017-01.zst"), "bytes": 13000},
              {"path": "gs://bucket/RS_2017-03.zst", "bytes": 5, "sha256": None}]
    options = {"cutoff": "2017-12", "min_karma": 3, "karma": "per-post", "dumps": [str(dumps)],
               "keep_over_18": False, "blocklists": ("a", "b")}
    return out, inputs, options


def test_manifest_records_everything(build):
    out, inputs, options = build
    written = mf.write_manifest(str(out), inputs, options, FUNNEL, command=["webtext", "build"])
    on_disk = json.loads((out / "MANIFEST.json").read_text())
    assert on_disk == written
    # inputs: sorted, sizes kept, local checksums computed by streaming, remote left null
    assert [i["path"].rsplit("/", 1)[1] for i in written["inputs"]] == [
        "RS_2017-01.zst", "RS_2017-02.zst", "RS_2017-03.zst"]
    local = written["inputs"][0]
    assert local["sha256"] == hashlib.sha256(b"fake dump one" * 1000).hexdigest()
    assert local["bytes"] == 13000 and written["inputs"][2]["sha256"] is None
    assert written["options"]["blocklists"] == ["a", "b"]
    assert written["options"]["min_karma"] == 3
    versions = written["versions"]
    assert {"python", "webtext", "pyarrow", "apache-beam"} <= versions.keys()
    # shards: relative paths, rows from the footer, bytes and sha256 of the file
    shards = written["shards"]
    assert [s["path"] for s in shards] == ["docs/shard-00000-of-00002.parquet",
                                           "docs/shard-00001-of-00002.parquet"]
    for shard in shards:
        path = out / shard["path"]
        assert shard["rows"] == pq.ParquetFile(path).metadata.num_rows == 60
        assert shard["bytes"] == path.stat().st_size
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert written["corpus"]["rows"] == 120 and written["corpus"]["files"] == 2
    assert written["corpus"]["rows_match_funnel"] is False  # the funnel says 400 documents
    assert written["command"] == ["webtext", "build"] and "built_at" not in written
    assert mf.verify_manifest(str(out)) == []


def test_two_writes_are_byte_identical_and_timings_do_not_leak(build, tmp_path):
    out, inputs, options = build
    # the same build copied elsewhere, with other timings and another dict order
    other = tmp_path / "other"
    shutil.copytree(out / "docs", other / "docs")
    # an input inside OUT (the embedded sample's dumps) is named relative to OUT
    for folder in (out, other):
        (folder / "sample").mkdir()
        (folder / "sample" / "RS_2006-01.zst").write_bytes(b"sample")
    inputs = [*inputs, (str(out / "sample" / "RS_2006-01.zst"), 6)]
    mf.write_manifest(str(out), inputs, options, FUNNEL, versions={"pyarrow": "1"})
    first = (out / "MANIFEST.json").read_bytes()
    assert b'"path": "sample/RS_2006-01.zst"' in first
    inputs[-1] = (str(other / "sample" / "RS_2006-01.zst"), 6)
    funnel = copy.deepcopy(FUNNEL)
    for stage in funnel["stages"]:
        stage["seconds"] = 99.0
        stage["reused"] = True
        stage["rejects"] = dict(reversed(list(stage["rejects"].items())))
    mf.write_manifest(str(other), list(reversed(inputs)), dict(reversed(list(options.items()))),
                      funnel, versions={"pyarrow": "1"})
    assert (other / "MANIFEST.json").read_bytes() == first
    assert b"seconds" not in first and b"reused" not in first
    # built_at goes in only when asked for
    stamped = mf.write_manifest(str(other), inputs, options, funnel, versions={"pyarrow": "1"},
                                built_at="2024-05-01T00:00:00Z")
    assert stamped["built_at"] == "2024-05-01T00:00:00Z"


def test_shard_change_changes_the_checksums(build):
    out, inputs, options = build
    before = mf.write_manifest(str(out), inputs, options, FUNNEL)
    shard = out / "docs" / "shard-00001-of-00002.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)
    problems = mf.verify_manifest(str(out))
    assert any("shard-00001-of-00002.parquet: rows 59" in p for p in problems)
    after = mf.write_manifest(str(out), inputs, options, FUNNEL)
    assert after["shards"][0] == before["shards"][0]
    assert after["shards"][1]["sha256"] != before["shards"][1]["sha256"]
    assert after["corpus"]["sha256"] != before["corpus"]["sha256"]


def test_funnel_balance():
    balance = mf.balance_funnel(FUNNEL)
    assert balance["balanced"] and balance["stages_balanced"] and balance["chained"]
    assert balance["rejected"] == 120
    assert balance["rejected_by_stage"] == {"fetch": 50, "extract": 15, "clean": 25, "dedup": 30}
    assert balance["links_stage"] == {"records_read": 5000, "kept": 600, "links": 520,
                                      "rejected": 4400, "balanced": True}
    assert balance["equation"] == ("links = documents + Σ rejects: 520 = 400 + 120 (balanced)")
    fetch = balance["stages"][1]
    assert list(fetch["rejects"]) == ["http_404", "timeout", "not_html"]  # biggest first
    assert set(fetch) == {"stage", "in", "out", "rejects", "rejected", "balanced"}

    lost = copy.deepcopy(FUNNEL)
    lost["stages"][2]["out"] = 450  # extract lost 5 rows without a reject
    lost["stages"][3]["in"] = 450
    lost["stages"][3]["out"] = 425
    lost["stages"][4]["in"] = 425
    lost["stages"][4]["out"] = 395
    lost["documents"] = 395
    balance = mf.balance_funnel(lost)
    assert not balance["balanced"] and not balance["stages_balanced"]
    assert [s["balanced"] for s in balance["stages"]] == [True, True, False, True, True]
    assert "NOT BALANCED" in balance["equation"]

    # links and documents default from the stages
    implicit = {"stages": FUNNEL["stages"][1:]}
    balance = mf.balance_funnel(implicit)
    assert balance["links"] == 520 and balance["documents"] == 400 and balance["balanced"]
    assert "links_stage" not in balance


@pytest.mark.parametrize(
    "funnel",
    [
        {},
        {"stages": "x"},
        {"stages": [{"in": 1, "out": 1}]},
        {"stages": [{"stage": "fetch", "in": -1, "out": 0}]},
        {"stages": [{"stage": "fetch", "in": "3", "out": 0}]},
        {"stages": [{"stage": "fetch", "in": 3, "out": 0, "rejects": {"x": 2.5}}]},
        {"stages": [], "links": True},
    ],
)
def test_malformed_funnels_are_errors(funnel):
    with pytest.raises(mf.ManifestError):
        mf.balance_funnel(funnel)


def test_unreadable_shard_is_an_error(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "shard-00000-of-00001.parquet").write_text("no")
    with pytest.raises(mf.ManifestError, match="not a readable Parquet file"):
        mf.write_manifest(str(tmp_path), [], {}, FUNNEL)
    assert not (tmp_path / "MANIFEST.json").exists()


def test_sha256_streams_and_artifacts(tmp_path):
    big = tmp_path / "tokens" / "train.bin"
    big.parent.mkdir()
    data = bytes(range(256)) * 20000  # several chunks
    big.write_bytes(data)
    assert mf.sha256_file(str(big), chunk_size=4096) == hashlib.sha256(data).hexdigest()
    (tmp_path / "tokens" / "meta.json").write_text("{}")
    (tmp_path / "tokens" / "x.tmp").write_text("partial")
    entries = mf.artifact_entries(str(tmp_path), ["tokens"])
    assert [e["path"] for e in entries] == ["tokens/meta.json", "tokens/train.bin"]
    manifest = mf.build_manifest(str(tmp_path), [], {}, FUNNEL, {}, artifacts=["tokens"])
    assert manifest["artifacts"] == entries and manifest["shards"] == []
