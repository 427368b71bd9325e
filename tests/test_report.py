"""The build report and the dataset card, over a small synthetic corpus written as real shards.

`write_fake_corpus` is shared with test_inspect.py and test_manifest.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from webtext_pipeline import report
from webtext_pipeline.records import DOCS_SCHEMA, REJECTS_SCHEMA, fraction_from_hash, stable_id

DOMAINS = [
    "nytimes.com", "bbc.co.uk", "theguardian.com", "washingtonpost.com", "github.com",
    "arstechnica.com", "npr.org", "reuters.com", "medium.com", "wired.com", "theatlantic.com",
    "vox.com", "imgur-blog.net", "latimes.com", "nature.com", "spiegel.de",
]
SUBREDDITS = [
    "worldnews", "news", "politics", "technology", "science", "programming", "todayilearned",
    "europe", "space", "Economics", "history", "books",
]
WORDS = ("the of and to a in is that for it as was with be by on not he this are or his from "
         "at which but have an they you were her she there one all we their been has more if "
         "will would about when who so what up out said year people new time government city "
         "report study police market election water energy research school music game").split()
EXTRACTORS = ["trafilatura", "trafilatura", "trafilatura", "readability"]

FUNNEL = {
    "stages": [
        {"stage": "links", "in": 5000, "out": 520, "kept": 600,
         "rejects": {"low_score": 3000, "self_post": 900, "removed": 300, "over_18": 50,
                     "reddit_internal": 100, "wikipedia": 30, "bad_json": 20},
         "seconds": 1.5},
        {"stage": "fetch", "in": 520, "out": 470,
         "rejects": {"http_404": 30, "timeout": 12, "not_html": 8}, "seconds": 3.0},
        {"stage": "extract", "in": 470, "out": 455, "rejects": {"no_text": 15}},
        {"stage": "clean", "in": 455, "out": 430,
         "rejects": {"too_short": 18, "not_english": 7}},
        {"stage": "dedup", "in": 430, "out": 400, "rejects": {"near_duplicate": 30}},
    ],
    "links": 520,
    "documents": 400,
}


def fake_rows(n_docs: int = 400, seed: int = 0) -> list[dict]:
    """Documents that look like the corpus: Zipf-ish domains, lognormal lengths, 2006–2017."""
    rng = random.Random(seed)
    domain_weights = [1 / (i + 1) for i in range(len(DOMAINS))]
    rows = []
    for i in range(n_docs):
        domain = rng.choices(DOMAINS, domain_weights)[0]
        url = f"https://www.{domain}/story/{i:05d}-{rng.randrange(10**6)}"
        doc_id = stable_id(url)
        n_words = max(40, min(6000, int(rng.lognormvariate(5.8, 0.9))))
        words = [rng.choice(WORDS) for _ in range(n_words)]
        text = " ".join(words).capitalize() + "."
        created = int(datetime(2006, 1, 1, tzinfo=UTC).timestamp()) + rng.randrange(
            12 * 365 * 86400)
        subs = sorted(set(rng.choices(SUBREDDITS, k=rng.choice((1, 1, 1, 2, 3)))))
        posts = len(subs) + rng.randrange(2)
        if i % 25:
            lang, score = "en", 0.9 + rng.random() * 0.0999
        else:
            lang, score = "de", 0.55 + rng.random() * 0.4
        cluster = 1 if rng.random() < 0.85 else rng.choice((2, 2, 3, 4, 7, 12))
        rows.append({
            "id": doc_id, "url": url, "final_url": url.replace("http://", "https://"),
            "domain": domain, "title": f"Story {i} about {rng.choice(WORDS)}", "text": text,
            "reddit_score": int(rng.paretovariate(0.9) * 3), "reddit_posts": posts,
            "subreddits": subs, "created_utc": created,
            "fetched_at": "2024-05-01T12:00:00Z", "http_status": 200,
            "extractor": rng.choice(EXTRACTORS), "page_title": f"Story {i}",
            "published": "" if i % 3 else "2015-03-02", "sitename": domain.split(".")[0],
            "author": "", "lang": lang, "lang_score": round(score, 4), "n_chars": len(text),
            "n_words": n_words, "dup_cluster": doc_id, "dup_cluster_size": cluster,
            "split": "val" if fraction_from_hash(doc_id) < 0.05 else "train",
        })
    return sorted(rows, key=lambda r: r["id"])


def write_fake_corpus(out_dir, n_docs: int = 400, n_shards: int = 3, seed: int = 0,
                      row_group_size: int = 64) -> list[dict]:
    """OUT/docs/shard-0000k-of-0000n.parquet (DOCS_SCHEMA) and OUT/rejects; returns the rows."""
    rows = fake_rows(n_docs, seed)
    docs = os.path.join(out_dir, "docs")
    os.makedirs(docs, exist_ok=True)
    for k in range(n_shards):
        part = rows[k::n_shards]
        table = pa.Table.from_pylist(part, schema=DOCS_SCHEMA)
        pq.write_table(table, os.path.join(docs, f"shard-{k:05d}-of-{n_shards:05d}.parquet"),
                       row_group_size=row_group_size)
    rejects = os.path.join(out_dir, "rejects")
    os.makedirs(rejects, exist_ok=True)
    for stage in FUNNEL["stages"]:
        reject_rows = [{"stage": stage["stage"], "key": f"{stage['stage']}-{reason}-{j}",
                        "reason": reason, "detail": ""}
                       for reason, n in stage["rejects"].items() for j in range(n)]
        pq.write_table(pa.Table.from_pylist(reject_rows, schema=REJECTS_SCHEMA),
                       os.path.join(rejects, f"{stage['stage']}-part-00000-of-00001.parquet"))
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    rows = write_fake_corpus(out)
    build = report.write_report(
        str(out), FUNNEL, command=["webtext", "build", "--out", "out", "--min-karma", "3"],
        options={"min_karma": 3, "cutoff": "2017-12"}, versions={"pyarrow": pa.__version__},
        extra_sections=[("Extra notes", "<p>added by a later stage</p>")],
    )
    report.write_card(str(out))
    return out, rows, build


def test_build_json_numbers_match_the_data(built):
    out, rows, build = built
    on_disk = json.loads((out / "report" / "build.json").read_text())
    assert on_disk == build
    stats = build["stats"]
    assert stats["rows"] == len(rows) and stats["files"] == 3
    assert stats["splits"] == dict(Counter(r["split"] for r in rows))
    assert stats["words"]["total"] == sum(r["n_words"] for r in rows)
    assert stats["words"]["max"] == max(r["n_words"] for r in rows)
    assert stats["chars"]["total"] == sum(r["n_chars"] for r in rows)
    domains = Counter(r["domain"] for r in rows)
    assert stats["domains"]["distinct"] == len(domains)
    assert stats["domains"]["top"][0] == [*domains.most_common(1)[0]]
    assert dict(map(tuple, stats["domains"]["top"])) == dict(domains)
    subs = Counter(s for r in rows for s in r["subreddits"])
    assert dict(map(tuple, stats["subreddits"]["top"])) == dict(subs)
    # histograms: every document in exactly one bin, in the right one
    assert sum(b["count"] for b in stats["n_words_hist"]) == len(rows)
    for b in stats["n_words_hist"]:
        assert b["count"] == sum(b["lo"] <= r["n_words"] <= b["hi"] for r in rows)
    for b in stats["dup_cluster_size_hist"]:
        assert b["count"] == sum(b["lo"] <= r["dup_cluster_size"] <= b["hi"] for r in rows)
    assert stats["duplicates_removed"] == sum(r["dup_cluster_size"] - 1 for r in rows)
    lang_bins = stats["lang_score_hist"]
    assert len(lang_bins) == 100 and sum(b["count"] for b in lang_bins) == len(rows)
    assert lang_bins[99]["count"] == sum(r["lang_score"] >= 0.99 for r in rows)
    assert lang_bins[95]["count"] == sum(0.95 <= r["lang_score"] < 0.96 for r in rows)
    months = Counter(datetime.fromtimestamp(r["created_utc"], UTC).strftime("%Y-%m") for r in rows)
    assert {m: n for m, n in stats["months"] if n} == dict(months)
    assert [m for m, _ in stats["months"]] == sorted(m for m, _ in stats["months"])
    # funnel and timings
    assert build["funnel"]["balanced"] and build["funnel"]["documents"] == 400
    assert build["timings"] == {"links": 1.5, "fetch": 3.0}


def test_stats_never_read_the_text_column(built, monkeypatch):
    out, _, _ = built
    seen = []
    original = pq.ParquetFile.iter_batches

    def spy(self, *args, columns=None, **kwargs):
        seen.append(columns)
        return original(self, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    report.corpus_stats(str(out / "docs"))
    assert seen and all(cols and "text" not in cols for cols in seen)


def test_page_is_self_contained_with_charts(built):
    out, _, _ = built
    page = (out / "report" / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 8
    for label in ("Funnel: links → documents", "Documents by length in words",
                  "Top domains by documents", "Top subreddits by documents",
                  "Documents by month of first Reddit post", "Documents by language score",
                  "Documents by duplicate-cluster size"):
        assert f'aria-label="{label}"' in page
    # nothing loaded from elsewhere: no script, no external src/href, no @import/url()
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', page))
    assert "links = documents + Σ rejects: 520 = 400 + 120 (balanced)" in page
    assert "bbc.co.uk" in page and "r/worldnews" in page
    assert "added by a later stage" in page and 'href="#extra-notes"' in page


def test_sections_can_be_added_later_without_the_shards(built, tmp_path):
    out, _, build = built
    # a copy of the report folder only: re-rendering must not need docs/
    copy = tmp_path / "copy"
    (copy / "report").mkdir(parents=True)
    (copy / "report" / "build.json").write_text(json.dumps(build))
    fragment = '<section id="model-validation"><h2>Model validation</h2><svg></svg></section>'
    index = report.add_report_section(str(copy), "Model validation", fragment)
    page = Path(index).read_text(encoding="utf-8")
    assert page.count('id="model-validation"') == 1 and 'href="#model-validation"' in page
    # re-rendered from build.json (keys sorted by name), reasons still come biggest first
    assert page.index("low_score 3,000") < page.index("self_post 900") < page.index("bad_json 20")
    assert page.index('href="#model-validation"') < page.index('href="#build"')
    # replacing a section keeps one copy
    report.add_report_section(str(copy), "Model validation", fragment.replace("<svg>", "<p>x"))
    page = Path(index).read_text(encoding="utf-8")
    assert page.count('id="model-validation"') == 1 and "<p>x" in page
    with pytest.raises(report.ReportError):
        report.add_report_section(str(tmp_path / "nowhere"), "x", "<p>x</p>")


def test_card_yaml_points_at_files_that_exist(built):
    out, rows, _ = built
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "other" and "text-generation" in header["task_categories"]
    assert header["size_categories"] == ["n<1K"]
    (config,) = header["configs"]
    assert config["config_name"] == "default"
    for entry in config["data_files"]:
        matches = sorted(out.glob(entry["path"]))
        assert [p.name for p in matches] == sorted(os.listdir(out / "docs"))
    # the same pattern reads the corpus as it is, with DuckDB
    pattern = str(out / config["data_files"][0]["path"])
    [(count,)] = duckdb.connect().execute(f"SELECT count(*) FROM '{pattern}'").fetchall()
    assert count == len(rows)
    for column in DOCS_SCHEMA.names:
        assert f"| `{column}` |" in text
    assert "links = documents + Σ rejects: 520 = 400 + 120 (balanced)" in text
    assert "webtext build --out out --min-karma 3" in text
    assert "belongs to its authors" in text


def test_count_rejects_reads_the_reject_files(built):
    out, _, _ = built
    counts = report.count_rejects(str(out))
    for stage in FUNNEL["stages"]:
        assert counts[stage["stage"]] == stage["rejects"]


def test_unbalanced_funnel_is_shown(tmp_path):
    write_fake_corpus(tmp_path, n_docs=30, n_shards=1)
    funnel = json.loads(json.dumps(FUNNEL))
    funnel["documents"] = 30
    build = report.write_report(str(tmp_path), funnel)
    assert not build["funnel"]["balanced"]
    page = (tmp_path / "report" / "index.html").read_text()
    assert "NOT BALANCED" in page


def test_errors_are_report_errors(tmp_path):
    with pytest.raises(report.ReportError, match="no such file"):
        report.corpus_stats(str(tmp_path / "missing"))
    (tmp_path / "docs").mkdir()
    with pytest.raises(report.ReportError, match="no .parquet"):
        report.corpus_stats(str(tmp_path))
    (tmp_path / "docs" / "shard-00000-of-00001.parquet").write_text("not parquet")
    with pytest.raises(report.ReportError, match="not a readable Parquet"):
        report.corpus_stats(str(tmp_path))
    assert issubclass(report.ReportError, ValueError)


def test_chart_helpers_handle_edges():
    assert "no data" in report.column_svg([], "x", "y")
    assert "no data" in report.hbar_svg([], "x")
    svg = report.column_svg([("a", 0), ("b", 3)], "label", "axis")
    assert svg.count("<rect") == 1
    bins = [{"lo": k / 100, "hi": (k + 1) / 100, "count": int(k >= 88)} for k in range(100)]
    bars, width = report._lang_bars(bins)
    assert bars[0] == ("0.85", 0) and bars[3] == ("0.88", 1) and len(bars) == 15
    assert width == 0.01
    bars, width = report._lang_bars([{"count": 1}] * 100)
    assert len(bars) == 20 and width == 0.05 and bars[-1] == ("0.95", 5)
    assert report._nice_max(7)[0] >= 7 and math.isclose(report._nice_max(100)[0], 100)
