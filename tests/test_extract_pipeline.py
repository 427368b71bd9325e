"""Extract + clean as a real Beam job: sample-web pages replayed offline, real Parquet in and out.

The hanging "extractor" is a module-level function of this file: the worker
process pickles it by reference, so the spawned child (and, in
multi_processing mode, Beam's worker processes) import this module to run it;
PYTHONPATH carries this folder to them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import time
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.extract_job import ExtractAndClean, run_extract
from beam_jobs.files import InputError
from webtext_pipeline.clean import CleanConfig
from webtext_pipeline.extract import ExtractConfig, extract_page
from webtext_pipeline.extract.commands import (
    add_extract_options,
    extract_configs,
    run_extract_file,
)
from webtext_pipeline.fetch import FetchConfig, Fetcher
from webtext_pipeline.links.sample import sample_articles
from webtext_pipeline.records import (
    CLEAN_REASONS,
    CLEAN_SCHEMA,
    EXTRACT_REASONS,
    FETCHED_SCHEMA,
    REJECTS_SCHEMA,
    Reject,
    stable_id,
)
from webtext_pipeline.sample_web import write_sample_warc

HERE = Path(__file__).resolve().parent
HANG_MARKER = "<!-- webtext-test: hang -->"
EXTRACT = ExtractConfig(timeout_s=3.0, max_html_chars=100_000)
CLEAN = CleanConfig()
IN_MEMORY = ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
MULTI = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
         "--direct_num_workers=2"]


def hanging_core(html, url, config, max_date):
    """The shipped extraction, except that a marked page never finishes."""
    if HANG_MARKER in html:
        time.sleep(60)
    return extract_page(html, url, config, max_date)


# --------------------------------------------------------------------------- inputs


def page(title: str, paragraphs: list[str], extra: str = "") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<html><head><title>{title}</title></head><body>{extra}<article><h1>{title}</h1>"
        f"{body}</article></body></html>"
    )


def fetched(url: str, html: str) -> dict:
    row = {
        "id": stable_id(url), "url": url, "domain": url.split("/")[2],
        "score": 5, "n_posts": 1, "subreddits": ["news"], "created_utc": 1_510_000_000,
        "title": "a post", "final_url": url, "http_status": 200,
        "content_type": "text/html; charset=utf-8", "charset": "utf-8",
        "charset_source": "header", "fetched_at": "2018-02-01T00:00:00Z", "elapsed_ms": 12,
        "n_bytes": len(html.encode()), "html": html, "warc_file": "crafted.warc.gz",
        "warc_offset": 0, "warc_length": 0,
    }
    return row


ARTICLE = [
    "The council met on Tuesday evening to discuss the new bridge over the river near the old "
    "station, and members spent most of the session on the budget for the coming year.",
    "Engineers told the committee that the structure would need new supports before winter, "
    "and that the work could be finished within six months if the money were approved soon.",
    "Residents who spoke at the meeting said they were worried about traffic during the works, "
    "and several asked whether the ferry service could run more often while the bridge closed.",
    "The mayor said that the city would publish a full plan next month and that there would be "
    "another public meeting before any final decision was taken on the design or the schedule.",
    "A local historian reminded the council that the first bridge on the site was built more "
    "than a century ago, and asked that the old stone piers be kept as part of the new design.",
]
CONSENT = (
    "We use cookies and similar technologies to improve your experience, to show you "
    "personalised content and to analyse our traffic. By continuing to browse the site you "
    "agree to our use of cookies. Read our privacy policy and terms of use to learn more "
    "about how we process your data and how you can change your settings."
)

# url -> (html, expected (stage, reason) or None for a kept document)
CRAFTED = {
    "https://crafted.example/kept": (page("Bridge works", ARTICLE), None),
    "https://crafted.example/empty": (
        "<html><head><title>x</title></head><body></body></html>", ("extract", "no_text")),
    "https://crafted.example/consent": (
        page("Notice", [CONSENT] * 6 + ["The library reopens on Monday."]),
        ("clean", "boilerplate")),
    "https://crafted.example/brief": (page("Brief", ARTICLE[:1]), ("clean", "too_short")),
    "https://crafted.example/huge": (
        page("Huge", ARTICLE * 200), ("extract", "too_large")),
    "https://crafted.example/hangs": (
        page("Hangs", ARTICLE, extra=HANG_MARKER), ("extract", "extract_timeout")),
    "https://www.wikiwand.com/en/Bridge": (page("Bridge", ARTICLE), ("extract", "wikipedia")),
}


def sample_rows(tmp: Path) -> list[dict]:
    """The first 20 sample-web articles (one of each kind) replayed offline from the WARC."""
    warc_dir = tmp / "warc"
    write_sample_warc(warc_dir / "sample.warc.gz")
    config = FetchConfig(offline=True, warc_cache=(str(warc_dir),))
    with Fetcher(config) as fetcher:
        outputs = list(fetcher.fetch_many([a.url for a in sample_articles()[:20]]))
    return [row for row in outputs if not isinstance(row, Reject)]


def write_fetched(directory: Path, rows: list[dict], files: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["url"])
    for index in range(files):
        table = pa.Table.from_pylist(rows[index::files], schema=FETCHED_SCHEMA)
        pq.write_table(table, directory / f"part-{index:05d}-of-{files:05d}.parquet")
    return directory


def read(directory: Path, pattern: str) -> list[dict]:
    rows = []
    for path in sorted(directory.glob(pattern)):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def file_bytes(out: Path) -> dict[str, bytes]:
    paths = sorted(out.glob("clean/part-*.parquet")) + sorted(
        out.glob("rejects/extract-part-*.parquet"))
    return {str(p.relative_to(out)): p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("extract-pipeline")
    rows = sample_rows(tmp) + [fetched(url, html) for url, (html, _) in CRAFTED.items()]
    fetched_dir = write_fetched(tmp / "fetched", rows)
    out = tmp / "out"
    started = time.monotonic()
    summary = run_extract(str(fetched_dir), str(out), EXTRACT, CLEAN,
                          PipelineOptions(IN_MEMORY), core=hanging_core)
    return {"tmp": tmp, "rows": rows, "fetched": fetched_dir, "out": out, "summary": summary,
            "seconds": time.monotonic() - started}


# --------------------------------------------------------------------------- the stage


def test_every_row_has_exactly_one_fate(built):
    summary, out = built["summary"], built["out"]
    docs = read(out, "clean/part-*.parquet")
    rejects = read(out, "rejects/extract-part-*.parquet")
    assert summary.balanced and not summary.reused
    assert summary.rows_in == len(built["rows"]) == len(docs) + len(rejects)
    assert summary.rows_out == len(docs) and sum(summary.rejects.values()) == len(rejects)
    fates = [d["url"] for d in docs] + [r["key"] for r in rejects]
    assert sorted(fates) == sorted(r["url"] for r in built["rows"])
    for reject in rejects:
        vocabulary = EXTRACT_REASONS if reject["stage"] == "extract" else CLEAN_REASONS
        assert reject["stage"] in ("extract", "clean") and reject["reason"] in vocabulary


def test_expected_reasons_appear(built):
    rejects = {r["key"]: (r["stage"], r["reason"]) for r in read(
        built["out"], "rejects/extract-part-*.parquet")}
    docs = {d["url"] for d in read(built["out"], "clean/part-*.parquet")}
    for url, (_html, expected) in CRAFTED.items():
        if expected is None:
            assert url in docs
        else:
            assert rejects.get(url) == expected, url
    # the sample web: a redirect to Wikipedia, German and French pages, a one-line page
    seen = set(rejects.values())
    assert {("extract", "wikipedia"), ("clean", "not_english"), ("clean", "too_short")} <= seen
    assert len(docs) >= 10  # the English sample articles
    assert built["summary"].rejects["not_english"] >= 2


def test_a_hanging_page_is_rejected_without_failing_the_run(built):
    rejects = read(built["out"], "rejects/extract-part-*.parquet")
    hung = [r for r in rejects if r["reason"] == "extract_timeout"]
    assert [r["key"] for r in hung] == ["https://crafted.example/hangs"]
    assert "3 s" in hung[0]["detail"]
    assert built["seconds"] < 30  # the 60 s sleep was cut off at the limit


def test_outputs_have_the_clean_schema_and_are_sorted(built):
    out = built["out"]
    for path in out.glob("clean/part-*.parquet"):
        schema = pq.read_schema(path)
        assert schema.remove_metadata() == CLEAN_SCHEMA
        assert schema.metadata[b"webtext.stage"] == b"extract+clean"
    for path in out.glob("rejects/extract-part-*.parquet"):
        assert pq.read_schema(path).remove_metadata() == REJECTS_SCHEMA
    docs = read(out, "clean/part-*.parquet")
    assert [d["url"] for d in docs] == sorted(d["url"] for d in docs)
    kept = next(d for d in docs if d["url"] == "https://crafted.example/kept")
    assert kept["lang"] == "en" and kept["n_words"] >= 100 and "bridge" in kept["text"]
    assert kept["page_title"] == "Bridge works" and kept["title"] == "a post"
    assert kept["n_chars"] == len(kept["text"]) and kept["extractor"]


def test_unchanged_rerun_is_reused_and_a_config_change_is_not(built):
    before = file_bytes(built["out"])
    again = run_extract(str(built["fetched"]), str(built["out"]), EXTRACT, CLEAN,
                        PipelineOptions(IN_MEMORY), core=hanging_core)
    assert again.reused and again.as_dict() == built["summary"].as_dict()
    assert file_bytes(built["out"]) == before
    # changed configs rerun the stage (in process here: no worker, so nothing hangs)
    copy = built["tmp"] / "out-changed"
    shutil.copytree(built["out"], copy)
    changed = run_extract(str(built["fetched"]), str(copy),
                          dataclasses.replace(EXTRACT, isolate=False), CleanConfig(min_words=20),
                          PipelineOptions(IN_MEMORY))
    assert not changed.reused and changed.balanced
    assert "https://crafted.example/hangs" in {d["url"] for d in read(copy, "clean/*.parquet")}
    assert "extract_timeout" not in changed.rejects


def test_multi_processing_run_into_a_fresh_folder_gives_the_same_bytes(built, monkeypatch):
    # Beam's worker processes and their extraction children import hanging_core from here.
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(HERE), path) if p))
    fresh = built["tmp"] / "out-multi"
    summary = run_extract(str(built["fetched"]), str(fresh), EXTRACT, CLEAN,
                          PipelineOptions(MULTI), core=hanging_core)
    assert summary.as_dict() | {"seconds": 0} == built["summary"].as_dict() | {"seconds": 0}
    assert file_bytes(fresh) == file_bytes(built["out"])
    assert file_bytes(fresh)  # something was compared


def test_transform_counts_each_reason(tmp_path):
    rows = [fetched(url, html) for url, (html, _) in CRAFTED.items() if "hangs" not in url]
    in_process = dataclasses.replace(EXTRACT, isolate=False)
    pipeline = beam.Pipeline(options=PipelineOptions(IN_MEMORY))
    docs, rejects = pipeline | beam.Create(rows) | ExtractAndClean(in_process, CLEAN)
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("webtext"))["counters"]
    }
    assert counters == {
        "clean.kept": 1, "extract.no_text": 1, "clean.boilerplate": 1, "clean.too_short": 1,
        "extract.too_large": 1, "extract.wikipedia": 1,
    }


def test_bad_inputs_stop_before_any_pipeline(tmp_path):
    with pytest.raises(InputError, match="no \\*.parquet files"):
        run_extract(str(tmp_path / "nope"), str(tmp_path / "out"), EXTRACT, CLEAN,
                    PipelineOptions(IN_MEMORY))
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"url": ["https://x.example/"]}), other / "part-0.parquet")
    with pytest.raises(InputError, match="not a fetched-pages file"):
        run_extract(str(other), str(tmp_path / "out"), EXTRACT, CLEAN,
                    PipelineOptions(IN_MEMORY))


# --------------------------------------------------------------------------- commands


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_extract_options(parser)
    return parser.parse_args(list(argv))


def test_default_options_give_the_shipped_configs():
    extract, clean = extract_configs(parse())
    assert extract == ExtractConfig() and clean == CleanConfig()
    extract, clean = extract_configs(parse(
        "--extract-timeout", "2.5", "--max-html-chars", "1000", "--extract-memory-mb", "0",
        "--readability", "never", "--second-opinion-share", "0.35", "--min-words", "50",
        "--lang", "DE", "--lang-threshold", "0.9"))
    assert (extract.timeout_s, extract.max_html_chars, extract.memory_headroom_mb) == (2.5, 1000, 0)
    assert (extract.readability, extract.second_opinion_share) == ("never", 0.35)
    assert (clean.min_words, clean.lang, clean.lang_threshold) == (50, "de", 0.9)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--extract-timeout", "0"], "--extract-timeout 0: must be more than 0"),
        (["--extract-timeout", "nan"], "--extract-timeout nan: must be more than 0"),
        (["--max-html-chars", "-5"], "--max-html-chars -5: must be more than 0"),
        (["--extract-memory-mb", "-1"], "--extract-memory-mb -1: must be 0"),
        (["--extract-memory-mb", "10"], "--extract-memory-mb 10: too small"),
        (["--second-opinion-share", "1.5"], "--second-opinion-share 1.5: must be between 0 and 1"),
        (["--min-words", "-1"], "--min-words -1: must be 0 or more"),
        (["--lang", "english"], "--lang english: not a language code"),
        (["--lang", "xx"], "--lang xx: not a language langdetect knows"),
        (["--lang-threshold", "2"], "--lang-threshold 2: must be between 0 and 1"),
    ],
)
def test_bad_option_values_name_the_option(argv, message):
    with pytest.raises(ValueError) as info:
        extract_configs(parse(*argv))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_run_extract_file(tmp_path):
    saved = tmp_path / "page.html"
    saved.write_text(page("Bridge works", ARTICLE), encoding="utf-8")
    text = run_extract_file(str(saved), "https://crafted.example/kept")
    assert "stone piers" in text and "Bridge works" not in text.splitlines()[0]
    with pytest.raises(FileNotFoundError, match="missing.html: no such file"):
        run_extract_file(str(tmp_path / "missing.html"), None)
    with pytest.raises(ValueError, match="is a directory"):
        run_extract_file(str(tmp_path), None)
    with pytest.raises(ValueError, match="--url ftp://x: not an http"):
        run_extract_file(str(saved), "ftp://x")
