"""The whole corpus build as ONE Beam pipeline, for runners that are not local (Dataflow).

    dump files ─► ExtractLinks ─► FetchPages ─► ExtractAndClean ─► Deduplicate ─► ToDocRows
                       │              │               │                 │              │
                   OUT/links     OUT/fetched      OUT/clean         OUT/dedup     OUT/docs/shard-*
           rejects/links-part  rejects/fetch-part  rejects/extract-part  rejects/dedup-part

The local build (beam_jobs.build) runs each stage as its own pipeline and reads
the previous stage's files between them (to count rows, size shards, resume).
That cannot be translated for a remote runner up front (a Dataflow dry run has
no files to read), and a chain of five Dataflow jobs pays five start-ups and
five worker pools. Here every shard count comes from a `BuildLayout` estimated
from the dump files' total compressed bytes alone, and the stages hand their
PCollections straight to the next one; the same folders and reject files are
written, with the same schemas, sort orders and file names, as the local stages.

Scale-out shape (no step holds a whole dump, host or corpus):
- each dump file is read by one DoFn call, and on a remote runner a Reshuffle
  spreads its line batches over every worker (ExtractLinks(spread_lines=True));
  posts per URL meet in a combiner (LinkCombineFn), not a list;
- fetch keys rows by crc32(host) into up to 4,096 buckets, cut into batches of
  500 rows by a stateful DoFn (a shuffle, so fusion breaks before fetching);
- extraction sits behind a Reshuffle (ExtractAndClean), so pages leave the
  worker that fetched them;
- dedup is the grouped MinHash pipeline of dedup_job; its one single-worker
  step is the union-find over documents that have a duplicate edge
  (docs/dedup.md, docs/scaling.md);
- every output is written by WriteSortedShards: one shard's rows on one worker,
  so the layout sizes shards to fit a worker.

Not resumable stage by stage: a remote runner retries failed work itself, and a
rerun rewrites every folder. The tokenizer and model stages are not Beam; they
run afterwards on one machine that reads OUT/docs (docs/scaling.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import stage_state
from beam_jobs.files import join
from beam_jobs.new_pipeline import new_pipeline
from beam_jobs.options import check_remote_paths, is_dry_run, is_local

ORDER = ("links", "fetch", "extract", "dedup", "shards")

# -- what the layout assumes about the input ------------------------------------------------
# Every figure errs on the side of MORE rows than the real dumps give, so that
# shards come out smaller (never larger) than the per-worker targets below.
# Pushshift RS_*.zst months hold ~250-400 bytes of zstd per submission (a
# submission's JSON is 1-3 kB); 150 over-counts submissions by ~2x.
COMPRESSED_BYTES_PER_SUBMISSION = 150
# WebText: 45M links from ~430M submissions (0.105); URL-unique links with karma >= 3.
LINKS_PER_SUBMISSION = 0.15
# Clean documents per link before dedup (WebText kept ~8M of 45M after dedup: 0.18).
CLEAN_PER_LINK = 0.5
# Dedup keeps most clean documents; the docs shards hold what it keeps.
DOCS_PER_CLEAN = 1.0
# zstd Parquet bytes per corpus document (WebText: ~40 GB of text / 8M docs, ~5 kB of
# text a document, compressing ~2.5x with its metadata columns).
DOC_PARQUET_BYTES = 2_000


@dataclass(frozen=True)
class BuildLayout:
    """Shard and bucket counts for every write, from the dump bytes (no intermediate files)."""

    dump_bytes: int
    est_submissions: int
    est_links: int
    est_clean: int
    est_docs: int
    links_shards: int
    links_reject_shards: int
    fetch_buckets: int
    fetch_batch_size: int
    fetched_shards: int
    fetch_reject_shards: int
    clean_shards: int
    extract_reject_shards: int
    dedup_shards: int
    dedup_reject_shards: int
    docs_shards: int


def estimate_layout(
    dump_bytes: int, shard_bytes: int, batch_size: int | None = None
) -> BuildLayout:
    """The layout of a build whose dump files total `dump_bytes` (compressed)."""
    from beam_jobs import dedup_job, extract_job, fetch_job
    from beam_jobs.links_run import shard_counts
    from webtext_pipeline.shards import shard_count

    batch = batch_size or fetch_job.DEFAULT_BATCH_SIZE
    submissions = max(1, math.ceil(dump_bytes / COMPRESSED_BYTES_PER_SUBMISSION))
    links = max(1, math.ceil(submissions * LINKS_PER_SUBMISSION))
    clean = max(1, math.ceil(links * CLEAN_PER_LINK))
    docs = max(1, math.ceil(clean * DOCS_PER_CLEAN))
    links_shards, links_rejects = shard_counts([("dumps", dump_bytes)])
    fetch = fetch_job.layout(links, batch)
    return BuildLayout(
        dump_bytes=dump_bytes,
        est_submissions=submissions,
        est_links=links,
        est_clean=clean,
        est_docs=docs,
        links_shards=links_shards,
        links_reject_shards=links_rejects,
        fetch_buckets=fetch["buckets"],
        fetch_batch_size=batch,
        fetched_shards=fetch["shards"],
        fetch_reject_shards=fetch["reject_shards"],
        clean_shards=max(1, math.ceil(clean / extract_job.ROWS_PER_SHARD)),
        extract_reject_shards=max(1, math.ceil(links / extract_job.REJECT_ROWS_PER_SHARD)),
        dedup_shards=max(1, math.ceil(clean / dedup_job.ROWS_PER_SHARD),
                         math.ceil(clean * DOC_PARQUET_BYTES / dedup_job.BYTES_PER_SHARD)),
        dedup_reject_shards=max(1, math.ceil(clean / dedup_job.REJECT_ROWS_PER_SHARD)),
        docs_shards=shard_count(docs * DOC_PARQUET_BYTES, shard_bytes),
    )


def plan_layout(plan) -> BuildLayout:
    return estimate_layout(sum(size for _, size in plan.dump_files), plan.shard_bytes)


# -- the pipeline ---------------------------------------------------------------------------


def _project(columns: list[str]):
    return lambda row: {name: row.get(name) for name in columns}


def _counted(pcoll, stage: str):
    from beam_jobs.row_stage import count_rows_in

    return pcoll | f"Count{stage.title()}In" >> beam.Map(count_rows_in(stage))


def _wants(plan, stage: str) -> bool:
    until = plan.until if plan.until in ORDER else "shards"
    return ORDER.index(stage) <= ORDER.index(until)


def _as_read_back(schema):
    """`schema` as a reader of its Parquet file sees it (list items are named "element"), as
    run_dedup sees the clean files, so the dedup files come out byte-identical."""
    import io

    import pyarrow.parquet as pq

    from beam_jobs.sharded_parquet import table_bytes

    return pq.read_schema(io.BytesIO(table_bytes([], schema, {}))).remove_metadata()


def _fetch_config(plan):
    config = plan.fetch
    if config.warc_dir is None:
        config = replace(config, warc_dir=join(plan.out, "warc"))
    return config


def add_build_transforms(pipeline: beam.Pipeline, plan, layout: BuildLayout) -> dict:
    """Add links → fetch → extract+clean → dedup → docs shards (as far as plan.until) to
    `pipeline`; returns the last PCollection of each stage added, by stage name."""
    from beam_jobs.dedup_job import REJECTS_PREFIX as DEDUP_REJECTS_PREFIX
    from beam_jobs.dedup_job import Deduplicate, output_schema
    from beam_jobs.dedup_job import doc_sort_key as dedup_sort_key
    from beam_jobs.extract_job import ExtractAndClean, doc_sort_key
    from beam_jobs.fetch_job import (
        INDEX_PARTITIONS_DIR,
        INPUT_COLUMNS,
        ROW_GROUP_ROWS,
        FetchPages,
        fetched_sort_key,
    )
    from beam_jobs.links_job import ExtractLinks, write_links, write_rejects
    from beam_jobs.row_stage import reject_sort_key
    from beam_jobs.sharded_parquet import WriteSortedShards
    from beam_jobs.shards_job import ToDocRows
    from webtext_pipeline.records import (
        CLEAN_SCHEMA,
        DOCS_SCHEMA,
        FETCHED_SCHEMA,
        LINKS_SCHEMA,
        REJECTS_SCHEMA,
    )
    from webtext_pipeline.shards import DOCS_ROW_GROUP_ROWS

    out, rules = plan.out, plan.rules
    rejects_dir = join(out, "rejects")
    stages: dict = {}

    def write_rejects_of(rejects, stage: str, shards: int):
        return rejects | f"Write{stage.title()}Rejects" >> WriteSortedShards(
            rejects_dir, f"{stage}-part", REJECTS_SCHEMA, shards, reject_sort_key
        )

    # links (as beam_jobs.links_run.build_links_pipeline)
    paths = pipeline | "DumpFiles" >> beam.Create([path for path, _ in plan.dump_files])
    spread = not is_local(pipeline.options) if pipeline.options else True
    links, link_rejects = paths | "Links" >> ExtractLinks(rules, spread_lines=spread)
    write_links(links, join(out, "links"), layout.links_shards, {
        "webtext.stage": "links", "webtext.karma": rules.karma,
        "webtext.min_karma": str(rules.min_karma), "webtext.cutoff": rules.cutoff,
    })
    write_rejects(link_rejects, rejects_dir, "links", layout.links_reject_shards)
    stages["links"] = links
    if not _wants(plan, "fetch"):
        return stages

    # fetch (as beam_jobs.fetch_job.run_fetch)
    config = _fetch_config(plan)
    columns = [c for c in INPUT_COLUMNS if c in LINKS_SCHEMA.names]
    link_rows = _counted(links | "LinkColumns" >> beam.Map(_project(columns)), "fetch")
    fetched, fetch_rejects = link_rows | "Fetch" >> FetchPages(
        config, num_buckets=layout.fetch_buckets, batch_size=layout.fetch_batch_size,
        index_dir=join(out, INDEX_PARTITIONS_DIR),
    )
    _ = fetched | "WriteFetched" >> WriteSortedShards(
        join(out, "fetched"), "part", FETCHED_SCHEMA, layout.fetched_shards, fetched_sort_key,
        {"webtext.stage": "fetch", "webtext.fetch.user_agent": config.user_agent,
         "webtext.fetch.offline": str(config.offline)},
        ROW_GROUP_ROWS,
    )
    write_rejects_of(fetch_rejects, "fetch", layout.fetch_reject_shards)
    stages["fetch"] = fetched
    if not _wants(plan, "extract"):
        return stages

    # extract + clean (as beam_jobs.extract_job.run_extract)
    ex, cl = plan.extract, plan.clean
    pages = _counted(fetched | "FetchedColumns" >> beam.Map(_project(FETCHED_SCHEMA.names)),
                     "extract")
    docs, extract_rejects = pages | "Extract" >> ExtractAndClean(ex, cl)
    _ = docs | "WriteClean" >> WriteSortedShards(
        join(out, "clean"), "part", CLEAN_SCHEMA, layout.clean_shards, doc_sort_key,
        {"webtext.stage": "extract+clean", "webtext.extract.timeout_s": str(ex.timeout_s),
         "webtext.extract.second_opinion_share": str(ex.second_opinion_share),
         "webtext.clean.lang": cl.lang, "webtext.clean.lang_threshold": str(cl.lang_threshold),
         "webtext.clean.min_words": str(cl.min_words)},
    )
    write_rejects_of(extract_rejects, "extract", layout.extract_reject_shards)
    stages["extract"] = docs
    if not _wants(plan, "dedup"):
        return stages

    # dedup (as beam_jobs.dedup_job.run_dedup: same files, kept rows also flow on)
    params = plan.dedup
    kept, dedup_rejects = docs | "Dedup" >> Deduplicate(params)
    _ = kept | "WriteDedup" >> WriteSortedShards(
        join(out, "dedup"), "part", output_schema(_as_read_back(CLEAN_SCHEMA)),
        layout.dedup_shards, dedup_sort_key,
        {f"webtext.dedup.{k}": str(v) for k, v in params.fingerprint().items()},
    )
    _ = dedup_rejects | "WriteDedupRejects" >> WriteSortedShards(
        rejects_dir, DEDUP_REJECTS_PREFIX, REJECTS_SCHEMA, layout.dedup_reject_shards,
        reject_sort_key,
    )
    stages["dedup"] = kept
    if not _wants(plan, "shards"):
        return stages

    # docs shards (as beam_jobs.shards_job.run_shards)
    rows, _none = _counted(kept, "shards") | "Shards" >> ToDocRows(plan.val_fraction)
    _ = rows | "WriteDocs" >> WriteSortedShards(
        join(out, "docs"), "shard", DOCS_SCHEMA, layout.docs_shards, lambda row: (row["id"],),
        {"webtext.stage": "shards", "webtext.val_fraction": repr(plan.val_fraction)},
        DOCS_ROW_GROUP_ROWS,
    )
    stages["shards"] = rows
    return stages


# -- running it -----------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


def prepare_fetch(plan, log: Callable[[str], None] = _say):
    """Check the fetch caches (as run_fetch does); a plan whose fetch config has its WARC
    folder filled in. A remote OUT/warc (gs://, s3://) is kept: workers stage their WARC
    files locally and publish them there. The caches are indexed by the pipeline itself
    (beam_jobs/index_partitions), not here."""
    import os

    from beam_jobs.fetch_job import FileSystemsStore, check_caches
    from webtext_pipeline.fetch import recover_orphans

    config = _fetch_config(plan)
    store = FileSystemsStore()
    check_caches(config, store)
    if store.is_remote(str(config.warc_dir)):
        log(f"build: WARC files are staged on each worker and published to {config.warc_dir}")
    elif os.path.isdir(str(config.warc_dir)):
        recover_orphans(config.warc_dir)
    return replace(plan, fetch=config)


def _counter(result, name: str) -> int | None:
    try:
        query = result.metrics().query(
            MetricsFilter().with_namespace("webtext").with_name(name))
    except Exception:  # a runner without metrics support
        return None
    values = [c.committed for c in query["counters"] if c.committed is not None]
    return sum(values) if values else None


def books(plan, records_read: int | None, seconds: float) -> list[dict]:
    """Funnel entries (same shape as beam_jobs.build's) from the reject files and shards."""
    from beam_jobs.build import extract_clean_entries
    from beam_jobs.links_run import LinksSummary, summarize
    from beam_jobs.row_stage import StageSummary, count_parquet_rows, reject_reasons

    out = plan.out
    summary = LinksSummary(files=[], skipped_files=[], rules={})
    summarize(out, 0, summary)
    read = records_read if records_read is not None else summary.posts_kept + summary.rejected
    funnel = [{"stage": "links", "in": read, "kept": summary.posts_kept, "out": summary.links,
               "rejects": summary.rejects, "seconds": seconds}]
    rows_in = summary.links
    for stage, folder, prefix in (("fetch", "fetched", "part"), ("extract", "clean", "part"),
                                  ("dedup", "dedup", "part"), ("shards", "docs", "shard")):
        if not _wants(plan, stage):
            break
        rows_out = count_parquet_rows(join(out, folder, f"{prefix}-*.parquet"))
        rejects = reject_reasons(join(out, "rejects", f"{stage}-part-*.parquet"))
        if stage == "extract":
            entry = StageSummary(stage=stage, rows_in=rows_in, rows_out=rows_out)
            funnel.extend(extract_clean_entries(out, entry))
        else:
            funnel.append({"stage": stage, "in": rows_in, "out": rows_out,
                           "rejects": rejects, "seconds": 0.0})
        rows_in = rows_out
    return funnel


def _unbalanced(funnel: list[dict]) -> str | None:
    for entry in funnel:
        kept = entry.get("kept", entry["out"])
        if entry["in"] != kept + sum(entry["rejects"].values()):
            return (f"{entry['stage']}: {entry['in']} in ≠ {kept} out + "
                    f"{sum(entry['rejects'].values())} rejected")
    return None


def _clear(out: str) -> None:
    stage_state.clear_outputs(
        [join(out, folder, "*") for folder in ("links", "fetched", "clean", "dedup", "docs")]
        + [join(out, "rejects", f"{stage}-part-*.parquet") for stage in ORDER]
    )


def run_remote_build(plan, log: Callable[[str], None] = _say) -> dict:
    """Build (and with --dry_run=True only translate) the whole corpus as one pipeline.

    Returns {"layout", "dry_run", "transforms", "steps"} for a dry run; otherwise also
    {"funnel", "seconds"}, the funnel counted from the files written (RuntimeError
    when the books do not balance).
    """
    options: PipelineOptions = plan.options
    dry_run = is_dry_run(options)
    check_remote_paths(options, plan.out, [path for path, _ in plan.dump_files])
    layout = plan_layout(plan)
    plan = prepare_fetch(plan, log)
    log(f"build: one pipeline, layout from {layout.dump_bytes:,} dump bytes: "
        f"~{layout.est_links:,} links in {layout.fetch_buckets} fetch buckets, "
        f"{layout.docs_shards} docs shard(s)")
    if not dry_run:
        _clear(plan.out)
    pipeline = new_pipeline(options)
    add_build_transforms(pipeline, plan, layout)
    proto = pipeline.to_runner_api()
    transforms = len(proto.components.transforms)
    steps = [proto.components.transforms[t].unique_name
             for root in proto.root_transform_ids
             for t in proto.components.transforms[root].subtransforms]
    started = time.monotonic()
    result = pipeline.run()
    report = {"layout": asdict(layout), "dry_run": dry_run, "transforms": transforms,
              "steps": steps}
    if dry_run:
        log(f"build: dry run: the pipeline ({transforms} transforms) translated; nothing ran")
        return report
    result.wait_until_finish()
    seconds = round(time.monotonic() - started, 3)
    from beam_jobs.links_job import RECORDS_READ

    funnel = books(plan, _counter(result, RECORDS_READ), seconds)
    report.update(funnel=funnel, seconds=seconds)
    problem = _unbalanced(funnel)
    if problem:
        raise RuntimeError(f"remote build: {problem}")
    log(f"build: corpus written in {seconds:.1f} s; the tokenizer and model stages are not "
        "Beam: run them on one machine that reads OUT/docs (docs/scaling.md)")
    return report


__all__ = [
    "BuildLayout",
    "add_build_transforms",
    "books",
    "estimate_layout",
    "plan_layout",
    "prepare_fetch",
    "run_remote_build",
]
