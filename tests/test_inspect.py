"""`webtext inspect`: summaries and queries over real Parquet shards."""

from __future__ import annotations

import io
from collections import Counter

import pyarrow.parquet as pq
import pytest
from test_report import write_fake_corpus

from webtext_pipeline import inspect_corpus
from webtext_pipeline.inspect_corpus import InspectError, run_inspect


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rows = write_fake_corpus(out, n_docs=300, n_shards=3)
    return out, rows


def run(path, **kwargs) -> str:
    buffer = io.StringIO()
    assert run_inspect(str(path), out=buffer, **kwargs) == 0
    return buffer.getvalue()


def test_summary_rows_splits_domains(corpus):
    out, rows = corpus
    text = run(out)  # the build folder: finds docs/
    of_docs = run(out / "docs")
    assert text.replace(str(out), str(out / "docs"), 1) == of_docs
    assert f"3 file(s), {len(rows):,} rows" in text
    splits = Counter(r["split"] for r in rows)
    for split, n in splits.items():
        assert any(line.split()[:2] == [split, f"{n:,}"] for line in text.splitlines())
    domains = Counter(r["domain"] for r in rows).most_common(3)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("top domains"))
    assert f"({len(set(r['domain'] for r in rows))} distinct)" in lines[start]
    for offset, (domain, n) in enumerate(domains):
        assert lines[start + 3 + offset].split()[:2] == [domain, f"{n:,}"]
    assert "shard-00002-of-00003.parquet" in text
    assert "subreddits        list<string>  no" in text
    assert f"words: {sum(r['n_words'] for r in rows):,}" in text
    assert "first posts: 2006-" in text


def test_summary_of_one_shard_never_reads_text(corpus, monkeypatch):
    out, _ = corpus
    shard = out / "docs" / "shard-00001-of-00003.parquet"
    seen = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, columns=None, **kwargs):
        seen.append(columns)
        return original(self, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("read everything"))
    text = run(shard)
    assert "1 file(s), 100 rows" in text
    assert seen and all("text" not in cols for cols in seen)


def test_head_truncates_text(corpus):
    out, rows = corpus
    text = run(out, head_n=4)
    lines = text.splitlines()
    assert lines[0].split() == ["id", "split", "domain", "reddit_score", "n_words", "title",
                                "text"]
    first_shard = rows[0::3]  # DuckDB keeps file order: the first shard's rows come first
    for line, row in zip(lines[2:6], first_shard[:4], strict=True):
        assert line.startswith(row["id"])
        assert line.endswith("…") and len(line) < 250
        assert row["text"][:40] in line
    assert lines[-1] == "(4 rows)"


def test_doc_shows_every_field_and_the_full_text(corpus):
    out, rows = corpus
    row = rows[123]
    text = run(out, doc_id=row["id"])
    assert text.endswith(row["text"] + "\n")
    assert f"url               {row['url']}" in text
    assert f"subreddits        {', '.join(row['subreddits'])}" in text
    with pytest.raises(InspectError, match="no document with this id"):
        run(out, doc_id="ffffffffffffffff")


def test_where_counts_and_filters(corpus):
    out, rows = corpus
    matching = [r for r in rows if r["domain"] == "bbc.co.uk"]
    text = run(out, where_sql="domain = 'bbc.co.uk'", head_n=3)
    assert text.startswith(f"{len(matching)} documents where domain = 'bbc.co.uk' "
                           "(showing the first 3)")
    body = text.splitlines()[3:]
    assert len(body) == 3 and all(" bbc.co.uk " in line for line in body)
    everything = run(out, where_sql="n_words > 1000000")
    assert everything.startswith("0 documents where")


def test_sql_over_the_docs_view(corpus):
    out, rows = corpus
    text = run(out, sql_query="SELECT split, count(*) AS n FROM docs GROUP BY split ORDER BY split")
    counts = Counter(r["split"] for r in rows)
    lines = text.splitlines()
    assert lines[0].split() == ["split", "n"]
    assert [line.split() for line in lines[2:-1]] == [[s, str(counts[s])] for s in sorted(counts)]
    assert lines[-1] == f"({len(counts)} rows)"
    long = run(out, sql_query="SELECT id, text FROM docs", head_n=2)
    assert "(first 2 rows shown" in long and "…" in long


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sql_query": "SELEC nonsense"}, "--sql: .*syntax error"),
        ({"sql_query": "SELECT nope FROM docs"}, "--sql: .*nope"),
        ({"where_sql": "no_such_column = 1"}, "--where: .*no_such_column"),
        ({"where_sql": "  "}, "--where: empty"),
        ({"doc_id": "x", "sql_query": "SELECT 1"}, "--doc and --sql: choose one"),
        ({"head_n": -1}, "--head -1"),
    ],
)
def test_bad_queries_are_one_line_errors(corpus, kwargs, message):
    out, _ = corpus
    with pytest.raises(InspectError, match=message) as info:
        run(out, **kwargs)
    assert "\n" not in str(info.value)


def test_bad_paths(tmp_path):
    with pytest.raises(InspectError, match="no such file or folder"):
        run(tmp_path / "missing")
    with pytest.raises(InspectError, match="no .parquet files"):
        run(tmp_path)
    bad = tmp_path / "shard-00000-of-00001.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InspectError, match="not a readable Parquet file") as info:
        run(bad)
    assert "\n" not in str(info.value)
    assert issubclass(InspectError, ValueError)


def test_format_table_alignment():
    table = inspect_corpus.format_table(("name", "n", "share"),
                                        [("a", 1000, "9.5%"), ("bb", 2, "10.0%")], commas=True)
    assert table.splitlines() == [
        "name      n  share",
        "----  -----  -----",
        "a     1,000   9.5%",
        "bb        2  10.0%",
    ]
