"""The dedup stage as real Beam pipelines on the DirectRunner, reading and writing real Parquet."""

from __future__ import annotations

import json
import random
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.dedup_job import Deduplicate, run_dedup
from beam_jobs.files import InputError
from webtext_pipeline.dedup import DEDUP_REASONS, DedupParams
from webtext_pipeline.dedup.local import dedup_local
from webtext_pipeline.dedup.shingles import shingle_strings
from webtext_pipeline.records import REJECTS_SCHEMA

RUNNER = ["--runner", "DirectRunner"]

VOCAB = [f"w{i}" for i in range(3000)]


def options() -> PipelineOptions:
    return PipelineOptions(RUNNER)


def article(rng: random.Random, words: int = 400) -> str:
    """Word salad over a 3000-word vocabulary: unrelated articles share almost no 5-gram."""
    return " ".join(rng.choice(VOCAB) for _ in range(words))


def edit(text: str, rng: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        words[rng.randrange(len(words))] = rng.choice(VOCAB)
    return " ".join(words)


def jaccard(a: str, b: str) -> float:
    sa, sb = shingle_strings(a), shingle_strings(b)
    return len(sa & sb) / len(sa | sb)


def write_docs(directory: Path, docs: list[dict], files: int = 1, schema=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        part = docs[index::files]
        table = pa.Table.from_pylist(part, schema=schema)
        pq.write_table(table, directory / f"input-{index}.parquet")
    return directory


def read_rows(directory: Path, pattern: str) -> list[dict]:
    rows = []
    for path in sorted(directory.glob(pattern)):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def corpus() -> tuple[list[dict], dict]:
    """A small corpus with every kind of duplicate; returns the docs and what to expect."""
    rng = random.Random(7)
    docs: list[dict] = []

    def add(doc_id, text, score=None, created=None):
        docs.append({"id": doc_id, "text": text, "reddit_score": score, "created_utc": created,
                     "url": f"https://example.com/{doc_id}"})
        return text

    # exact copies: case, whitespace and punctuation differ; highest score survives
    exact = article(rng)
    add("ex-a", exact, 5, 100)
    add("ex-b", exact.upper(), 50, 300)
    add("ex-c", "  " + exact.replace(" ", " ,  ") + " !", 7, 50)
    # near copies: survivor ties on score, so the earliest post wins
    near = article(rng)
    add("nr-a", near, 20, 900)
    add("nr-b", edit(near, rng, 3), 20, 100)
    add("nr-c", edit(near, rng, 4), 1, 50)
    # a transitive chain: a~b, b~c, a and c below the threshold (sliding windows)
    base = article(rng, 700).split()
    chain_a, chain_b, chain_c = (" ".join(base[start : start + 600]) for start in (0, 50, 100))
    add("ch-a", chain_a, None, None)
    add("ch-b", chain_b, None, None)
    add("ch-c", chain_c, None, None)
    # unrelated documents, one with no words at all, one with very few
    for i in range(40):
        add(f"solo-{i:02d}", article(rng), rng.randrange(100), rng.randrange(10**6))
    add("empty-1", "!!! ... ???", 1, 1)
    add("short", "just three words", 1, 1)
    expect = {
        "chain": (jaccard(chain_a, chain_b), jaccard(chain_b, chain_c), jaccard(chain_a, chain_c)),
        "near": (jaccard(near, docs[4]["text"]), jaccard(near, docs[5]["text"])),
    }
    return docs, expect


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup")
    docs, expect = corpus()
    write_docs(root / "in", docs, files=3)
    summary = run_dedup(str(root / "in"), str(root / "out"), options(), DedupParams())
    return root, docs, expect, summary


def test_books_balance_and_every_document_is_accounted_for(stage):
    root, docs, _expect, summary = stage
    kept = read_rows(root / "out" / "docs", "part-*.parquet")
    rejects = read_rows(root / "out" / "rejects", "dedup-part-*.parquet")
    assert summary.balanced and summary.rows_in == len(docs) == len(kept) + len(rejects)
    assert sorted([r["id"] for r in kept] + [r["key"] for r in rejects]) == sorted(
        d["id"] for d in docs
    )
    assert summary.rejects == {"near_duplicate": 4, "exact_duplicate": 2}
    assert set(summary.rejects) <= set(DEDUP_REASONS)
    state = json.loads((root / "out" / "docs" / "_stage.json").read_text())
    assert state["balanced"] and state["layout"] == [18, 6]


def test_exact_copies_keep_the_highest_score(stage):
    root, *_ = stage
    rejects = {r["key"]: r for r in read_rows(root / "out" / "rejects", "dedup-part-*")}
    kept = {r["id"]: r for r in read_rows(root / "out" / "docs", "part-*")}
    assert "ex-b" in kept and kept["ex-b"]["dup_cluster"] == "ex-b"
    assert kept["ex-b"]["dup_cluster_size"] == 3
    for loser in ("ex-a", "ex-c"):
        assert rejects[loser]["reason"] == "exact_duplicate"
        assert rejects[loser]["detail"] == "kept=ex-b cluster_size=3"
        assert rejects[loser]["stage"] == "dedup"


def test_near_copies_tie_on_score_and_the_earliest_post_wins(stage):
    root, _docs, expect, _summary = stage
    assert min(expect["near"]) >= 0.8
    rejects = {r["key"]: r for r in read_rows(root / "out" / "rejects", "dedup-part-*")}
    kept = {r["id"]: r for r in read_rows(root / "out" / "docs", "part-*")}
    assert kept["nr-b"]["dup_cluster_size"] == 3
    assert rejects["nr-a"]["reason"] == rejects["nr-c"]["reason"] == "near_duplicate"
    assert rejects["nr-a"]["detail"].startswith("kept=nr-b ")


def test_a_transitive_chain_is_one_cluster_and_without_scores_the_smallest_id_wins(stage):
    root, _docs, expect, _summary = stage
    ab, bc, ac = expect["chain"]
    assert ab >= 0.8 and bc >= 0.8 and ac < 0.8
    kept = {r["id"]: r for r in read_rows(root / "out" / "docs", "part-*")}
    rejects = {r["key"]: r for r in read_rows(root / "out" / "rejects", "dedup-part-*")}
    assert kept["ch-a"]["dup_cluster_size"] == 3
    assert rejects["ch-c"]["detail"] == "kept=ch-a cluster_size=3"


def test_outputs_have_the_input_columns_plus_the_cluster_columns(stage):
    root, docs, _expect, _summary = stage
    for path in (root / "out" / "docs").glob("part-*.parquet"):
        table = pq.read_table(path)
        assert table.schema.names == ["id", "text", "reddit_score", "created_utc", "url",
                                      "dup_cluster", "dup_cluster_size"]
        assert table.schema.field("dup_cluster_size").type == pa.int64()
        assert table.schema.metadata[b"webtext.dedup.threshold"] == b"0.8"
        ids = table.column("id").to_pylist()
        assert ids == sorted(ids)
    for path in (root / "out" / "rejects").glob("dedup-part-*.parquet"):
        assert pq.read_table(path).schema.remove_metadata() == REJECTS_SCHEMA
    kept = {r["id"]: r for r in read_rows(root / "out" / "docs", "part-*")}
    assert kept["solo-00"]["dup_cluster"] == "solo-00" and kept["solo-00"]["dup_cluster_size"] == 1
    assert kept["empty-1"]["dup_cluster_size"] == 1 and "short" in kept
    source = {d["id"]: d for d in docs}
    assert all(kept[i]["text"] == source[i]["text"] for i in kept)


def test_output_is_byte_identical_however_the_input_is_split(stage, tmp_path):
    root, docs, _expect, _summary = stage
    shuffled = docs[:]
    random.Random(99).shuffle(shuffled)
    write_docs(tmp_path / "in", shuffled, files=1)
    run_dedup(str(tmp_path / "in"), str(tmp_path / "out"), options(), DedupParams())
    for sub, pattern in (("docs", "part-*.parquet"), ("rejects", "dedup-part-*.parquet")):
        first = sorted((root / "out" / sub).glob(pattern))
        second = sorted((tmp_path / "out" / sub).glob(pattern))
        assert [p.name for p in first] == [p.name for p in second]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))


def test_a_rerun_with_the_same_inputs_is_reused_and_new_params_rerun(stage):
    root, *_ = stage
    again = run_dedup(str(root / "in"), str(root / "out"), options(), DedupParams())
    assert again.reused and again.balanced
    looser = run_dedup(str(root / "in"), str(root / "out"), options(), DedupParams(threshold=0.6))
    assert not looser.reused and looser.rejects["near_duplicate"] == 4


def run_transform(docs: list[dict], params: DedupParams):
    """Deduplicate over an in-pipeline generated list; returns kept, rejects and counters."""
    found = {}

    with beam.Pipeline(options=options()) as pipeline:
        kept, rejects = (
            pipeline
            | beam.Create([json.dumps(d) for d in docs])
            | beam.Map(json.loads)
            | Deduplicate(params)
        )
        _ = kept | "KeptJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True)) | \
            "WriteKept" >> beam.io.WriteToText(str(TMP / "kept"))
        _ = rejects | "RejectJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True)) | \
            "WriteRejects" >> beam.io.WriteToText(str(TMP / "rejects"))
    result = pipeline.result
    for counter in result.metrics().query()["counters"]:
        if counter.key.metric.namespace == "webtext":
            found[counter.key.metric.name] = counter.committed
    kept = [json.loads(line) for p in sorted(TMP.glob("kept*")) for line in p.open()]
    rejects = [json.loads(line) for p in sorted(TMP.glob("rejects*")) for line in p.open()]
    for path in TMP.glob("*"):
        path.unlink()
    return kept, rejects, found


TMP = Path()


@pytest.fixture()
def scratch(tmp_path):
    global TMP
    TMP = tmp_path
    return tmp_path


def test_a_huge_bucket_stays_linear_and_lands_in_one_cluster(scratch):
    rng = random.Random(5)
    base = article(rng, 600)
    docs = [{"id": f"copy-{i:04d}", "text": edit(base, rng, 3), "score": i % 13}
            for i in range(240)]
    params = DedupParams(max_bucket=16)
    kept, rejects, counters = run_transform(docs, params)
    assert len(kept) == 1 and len(rejects) == 239
    assert kept[0]["dup_cluster_size"] == 240 and kept[0]["score"] == 12
    # all pairs would be up to 18 bands x 28,680 pairs; stars cost at most 18 x 239
    assert counters["dedup.large_buckets"] >= 1
    assert counters["dedup.candidate_pairs"] <= 239 * params.layout.bands
    assert counters["dedup.in"] == 240 and counters["dedup.near_duplicate"] == 239


def test_the_beam_job_agrees_with_the_reference_and_counts_every_reason(scratch):
    docs, _expect = corpus()
    rng = random.Random(8)
    extra = [{"id": f"v{i}", "text": edit(docs[i]["text"], rng, rng.randrange(1, 40)),
              "reddit_score": i} for i in range(10, 45)]
    same_id = [{"id": "solo-03", "text": "a different page that reused an id", "reddit_score": 1}]
    docs = docs + extra + same_id
    params = DedupParams()
    kept, rejects, counters = run_transform(docs, params)
    local = dedup_local(docs, params)
    def canonical(rows):
        return sorted(json.dumps(r, sort_keys=True) for r in rows)

    assert canonical(kept) == canonical(local.kept)
    assert canonical(rejects) == canonical(local.rejects)
    reasons = {r["reason"] for r in rejects}
    assert reasons == {"exact_duplicate", "near_duplicate", "duplicate_id"}
    for reason in reasons:
        assert counters[f"dedup.{reason}"] == sum(r["reason"] == reason for r in rejects)
    assert counters["dedup.kept"] == len(kept) and counters["dedup.in"] == len(docs)
    assert counters["dedup.verified_pairs"] == len(local.verified)
    assert counters["dedup.no_tokens"] == 1


def test_without_score_or_time_columns_the_smallest_id_wins(scratch):
    text = article(random.Random(1))
    docs = [{"id": i, "text": text if i % 2 else text.title()} for i in (30, 4, 17, 12)]
    kept, rejects, _ = run_transform(docs, DedupParams())
    assert [r["id"] for r in kept] == [4] and kept[0]["dup_cluster"] == "4"
    assert {r["detail"] for r in rejects} == {"kept=4 cluster_size=4"}


def test_bad_inputs_stop_with_one_line(tmp_path):
    with pytest.raises(InputError, match="no \\*.parquet"):
        run_dedup(str(tmp_path / "nothing"), str(tmp_path / "out"), options())
    write_docs(tmp_path / "notext", [{"id": "a", "body": "x"}])
    with pytest.raises(InputError, match="no text column"):
        run_dedup(str(tmp_path / "notext"), str(tmp_path / "out"), options())
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet"):
        run_dedup(str(tmp_path / "broken"), str(tmp_path / "out"), options())


def test_the_stage_writes_what_deduplicate_plus_write_sorted_shards_would(stage, tmp_path):
    """run_dedup routes and writes in one shuffle; the plain composition gives the same bytes."""
    from apache_beam.io.parquetio import ReadFromParquet

    from beam_jobs.dedup_job import doc_sort_key, input_files, inspect_inputs, output_schema
    from beam_jobs.sharded_parquet import WriteSortedShards

    root, docs, _expect, _summary = stage
    run_dedup(str(root / "in"), str(tmp_path / "staged"), options(), DedupParams(), num_shards=3)
    schema = output_schema(inspect_inputs(input_files(str(root / "in")))[0])
    metadata = {f"webtext.dedup.{k}": str(v) for k, v in DedupParams().fingerprint().items()}
    with beam.Pipeline(options=options()) as pipeline:
        kept, _rejects = (
            pipeline | ReadFromParquet(str(root / "in" / "*.parquet")) | Deduplicate(DedupParams())
        )
        _ = kept | WriteSortedShards(str(tmp_path / "plain"), "part", schema, 3, doc_sort_key,
                                     metadata)
    staged = sorted((tmp_path / "staged" / "docs").glob("part-*.parquet"))
    plain = sorted((tmp_path / "plain").glob("part-*.parquet"))
    assert [p.name for p in staged] == [p.name for p in plain] and len(staged) == 3
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(staged, plain, strict=True))
    local = dedup_local(docs, DedupParams())
    assert sorted(r["id"] for r in read_rows(tmp_path / "staged" / "docs", "part-*")) == sorted(
        r["id"] for r in local.kept
    )


def test_an_empty_input_writes_empty_shards_and_balances(tmp_path):
    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    write_docs(tmp_path / "in", [], schema=schema)
    summary = run_dedup(str(tmp_path / "in"), str(tmp_path / "out"), options())
    assert summary.rows_in == summary.kept == 0 and summary.rejects == {} and summary.balanced
    shards = list((tmp_path / "out" / "docs").glob("part-*.parquet"))
    assert len(shards) == 1 and pq.read_table(shards[0]).num_rows == 0
