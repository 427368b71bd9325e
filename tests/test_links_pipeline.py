"""The links stage as a real Beam pipeline on the DirectRunner over the embedded sample."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from webtext_pipeline.cli import main
from webtext_pipeline.records import LINKS_REASONS, LINKS_SCHEMA, REJECTS_SCHEMA

RUNNER = ["--runner", "DirectRunner"]


def run_links(out: Path, dumps: Path, *extra: str) -> None:
    assert main(["links", "--dumps", str(dumps), "--out", str(out), *extra, *RUNNER]) == 0


def read(directory: Path, pattern: str):
    files = sorted(directory.glob(pattern))
    assert files, f"no {pattern} in {directory}"
    return [pq.read_table(f) for f in files]


@pytest.fixture(scope="module")
def links_out(tmp_path_factory, sample_dumps):
    out = tmp_path_factory.mktemp("links-out")
    run_links(out, sample_dumps)
    return out


def test_every_record_is_accounted_for(links_out):
    stage = json.loads((links_out / "links" / "_stage.json").read_text())
    links = read(links_out / "links", "part-*.parquet")
    rejects = read(links_out / "rejects", "links-part-*.parquet")
    posts = sum(sum(t.column("n_posts").to_pylist()) for t in links)
    n_rejects = sum(t.num_rows for t in rejects)
    assert stage["balanced"] and stage["records_read"] == posts + n_rejects
    assert stage["posts_kept"] == posts and stage["records_read"] > 4000


def test_every_quirk_of_the_sample_meets_its_rule(links_out):
    reasons = {r for t in read(links_out / "rejects", "links-part-*") for r in
               t.column("reason").to_pylist()}
    assert reasons == set(LINKS_REASONS) - {"low_score_sum"}


def test_outputs_have_the_contract_schemas(links_out):
    for table in read(links_out / "links", "part-*.parquet"):
        assert table.schema.remove_metadata() == LINKS_SCHEMA
        meta = table.schema.metadata
        assert meta[b"webtext.karma"] == b"per-post" and meta[b"webtext.schema_version"] == b"1"
    for table in read(links_out / "rejects", "links-part-*.parquet"):
        assert table.schema.remove_metadata() == REJECTS_SCHEMA


def test_links_are_unique_clean_and_before_the_cutoff(links_out):
    rows = [r for t in read(links_out / "links", "part-*") for r in t.to_pylist()]
    keys = [r["url_key"] for r in rows]
    assert len(keys) == len(set(keys))
    assert all(r["score"] >= 3 for r in rows)
    assert all(r["created_utc"] < 1514764800 for r in rows)
    assert not any("wikipedia" in r["domain"] or "reddit" in r["domain"] for r in rows)
    multi = [r for r in rows if r["n_posts"] > 1]
    assert multi and all(r["n_posts"] == len(r["post_ids"]) for r in multi)
    # the sample posts one article as https://www.…?utm_…, /#comments and http://…?fbclid=…
    assert all("utm_" not in k and "fbclid" not in k and "#" not in k for k in keys)


def test_truncated_file_is_a_reject_and_the_run_goes_on(links_out):
    rows = [r for t in read(links_out / "rejects", "links-part-*") for r in t.to_pylist()
            if r["reason"] == "truncated_file"]
    assert len(rows) == 1 and rows[0]["key"].endswith("RS_2017-10.zst")


def test_same_inputs_give_byte_identical_files(tmp_path, sample_dumps, links_out):
    run_links(tmp_path, sample_dumps)
    for sub, pattern in (("links", "part-*.parquet"), ("rejects", "links-part-*.parquet")):
        first = sorted((links_out / sub).glob(pattern))
        second = sorted((tmp_path / sub).glob(pattern))
        assert [f.name for f in first] == [f.name for f in second]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


def test_karma_sum_mode_is_recorded_and_balanced(tmp_path, sample_dumps):
    run_links(tmp_path, sample_dumps, "--karma", "sum")
    stage = json.loads((tmp_path / "links" / "_stage.json").read_text())
    assert stage["balanced"] and stage["rules"]["karma"] == "sum"
    assert "low_score_sum" in stage["rejects"] and "low_score" not in stage["rejects"]
    table = read(tmp_path / "links", "part-*")[0]
    assert table.schema.metadata[b"webtext.karma"] == b"sum"
    assert min(table.column("score_sum").to_pylist()) >= 3


def test_build_runs_the_links_stage_on_the_embedded_sample(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["build", "--cutoff", "2017-12", "--out", str(out), "--until", "links", *RUNNER]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "embedded sample" in printed and "build: links done" in printed
    assert "stopped after links" in printed
    assert "RS_2018-01.zst" in printed  # skipped: after the cutoff
    tmp_path = out
    assert list((tmp_path / "links").glob("part-*.parquet"))


def test_rerun_reuses_finished_stage_and_option_change_recomputes(tmp_path, sample_dumps, capsys):
    run_links(tmp_path, sample_dumps)
    first = (tmp_path / "links" / "part-00000-of-00001.parquet").stat().st_mtime_ns
    capsys.readouterr()
    run_links(tmp_path, sample_dumps)
    assert "reused the finished output" in capsys.readouterr().out
    assert (tmp_path / "links" / "part-00000-of-00001.parquet").stat().st_mtime_ns == first
    run_links(tmp_path, sample_dumps, "--min-karma", "10")
    assert "reused" not in capsys.readouterr().out
    rows = read(tmp_path / "links", "part-*")[0].column("score").to_pylist()
    assert min(rows) >= 10


def test_remote_layout_with_line_reshuffle_gives_the_same_links(tmp_path, sample_dumps, links_out):
    """Remote runners spread line batches with a Reshuffle; the result must not change."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.links_run import build_links_pipeline
    from webtext_pipeline.links.submissions import LinkRules

    files = sorted(str(p) for p in sample_dumps.glob("RS_2017-1*"))
    with beam.Pipeline(options=PipelineOptions(RUNNER)) as pipeline:
        build_links_pipeline(pipeline, files, LinkRules(), str(tmp_path), (1, 4), spread_lines=True)
    ours = (tmp_path / "links" / "part-00000-of-00001.parquet").read_bytes()
    assert ours == (links_out / "links" / "part-00000-of-00001.parquet").read_bytes()


def test_rejects_written_as_lists_give_the_bytes_of_one_row_at_a_time(tmp_path, links_out):
    """The links DoFns emit a batch's reject rows as one element; the shard writer must
    put every row where it would put it alone, so the files are the same bytes."""
    import random

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_jobs.links_job import reject_sort_key
    from beam_jobs.new_pipeline import new_pipeline
    from beam_jobs.sharded_parquet import WriteSortedShards

    rows = [row for table in read(links_out / "rejects", "links-part-*.parquet")
            for row in table.to_pylist()]
    random.Random(3).shuffle(rows)
    cuts = sorted(random.Random(4).sample(range(1, len(rows)), 40))
    lists = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    for batched, elements in ((True, lists), (False, rows)):
        with new_pipeline(PipelineOptions(["--runner=DirectRunner"])) as pipeline:
            _ = (pipeline | beam.Create(elements, reshuffle=False)
                 | WriteSortedShards(str(tmp_path / str(batched)), "part", REJECTS_SCHEMA, 3,
                                     reject_sort_key, batched=batched))
    written = {batched: {p.name: p.read_bytes() for p in (tmp_path / str(batched)).iterdir()}
               for batched in (True, False)}
    assert len(written[True]) == 3 and written[True] == written[False]
