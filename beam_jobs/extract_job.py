"""Stages three and four as one Beam job: fetched HTML -> clean documents, every row accounted for.

    OUT/fetched/*.parquet ─► Read ─► Reshuffle ─► ExtractClean (DoFn) ─┬─► OUT/clean/part-*.parquet
                                                                      └─► OUT/rejects/extract-part-*

Extraction is the expensive step (tens of ms a page against microseconds for
the Parquet read), so a `Reshuffle` breaks fusion with the read: the pages
spread over every worker instead of staying with the worker that read their
file. Each DoFn instance owns one `ExtractWorker` (a killable child process
that enforces the per-page time limit), made in `setup` and closed in
`teardown`; the DoFn carries only picklable configs, so setup may run in any
process.

Each fetched row leaves with exactly one fate: a document (CLEAN_SCHEMA
columns only) or one reject row, stage "extract" (EXTRACT_REASONS) or
"clean" (CLEAN_REASONS). Counters (namespace "webtext"): `extract.<reason>`,
`clean.<reason>`, `clean.kept`; `extract.in` comes from the row stage's read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import progress
from beam_jobs.files import InputError, join
from beam_jobs.parquet_inputs import count_rows, list_parquet
from beam_jobs.row_stage import NAMESPACE, StageSpec, StageSummary, run_row_stage
from webtext_pipeline.clean import STAGE as CLEAN_STAGE
from webtext_pipeline.clean import CleanConfig, clean_record
from webtext_pipeline.extract import STAGE as EXTRACT_STAGE
from webtext_pipeline.extract import ExtractConfig, ExtractWorker, extract_record
from webtext_pipeline.records import CLEAN_SCHEMA, FETCHED_SCHEMA, Reject

STAGE = "extract"  # the row stage's name: its rejects are OUT/rejects/extract-part-*.parquet
REJECTS = "rejects"
OUTPUT_DIR = "clean"
OUTPUT_PREFIX = "part"
CLEAN_COLUMNS = tuple(CLEAN_SCHEMA.names)
# WriteSortedShards holds one shard's rows on one worker while it sorts them: at a
# few kB of text a document, 20k documents are ~100 MB.
ROWS_PER_SHARD = 20_000
REJECT_ROWS_PER_SHARD = 1_000_000


def _count(stage: str, name: str) -> None:
    Metrics.counter(NAMESPACE, f"{stage}.{name}").inc()


class _ExtractClean(beam.DoFn):
    """fetched row -> document (main output) | reject row (tagged REJECTS)."""

    def __init__(
        self,
        extract_config: ExtractConfig,
        clean_config: CleanConfig,
        core: Callable | None = None,
    ) -> None:
        self.extract_config = extract_config
        self.clean_config = clean_config
        self.core = core  # a module-level function(html, url, config, max_date) -> Extraction
        self.worker: ExtractWorker | None = None

    def __getstate__(self) -> dict:
        # Never ship a live worker (a process handle) to another process.
        state = dict(self.__dict__)
        state["worker"] = None
        return state

    def setup(self) -> None:
        if self.extract_config.isolate:
            # Cheap: the child process starts on the first page.
            self.worker = ExtractWorker(self.extract_config, core=self.core)

    def process(self, row: dict) -> Iterator:
        if self.extract_config.isolate and self.worker is None:  # setup skipped by a runner
            self.setup()
        progress.tick(f"{STAGE}: pages extracted")
        doc = extract_record(row, self.extract_config, worker=self.worker)
        if isinstance(doc, Reject):
            _count(EXTRACT_STAGE, doc.reason)
            yield beam.pvalue.TaggedOutput(REJECTS, doc.to_row())
            return
        cleaned = clean_record(doc, self.clean_config)
        if isinstance(cleaned, Reject):
            _count(CLEAN_STAGE, cleaned.reason)
            yield beam.pvalue.TaggedOutput(REJECTS, cleaned.to_row())
            return
        _count(CLEAN_STAGE, "kept")
        yield {name: cleaned[name] for name in CLEAN_COLUMNS}

    def teardown(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None


class ExtractAndClean(beam.PTransform):
    """Fetched rows (FETCHED_SCHEMA) -> (documents (CLEAN_SCHEMA), reject rows).

    `core` replaces the extraction function run inside the worker process
    (a module-level `core(html, url, config, max_date) -> Extraction`); None
    means the shipped `extract_page`. Tests use it to make a page hang.
    """

    def __init__(
        self,
        extract_config: ExtractConfig | None = None,
        clean_config: CleanConfig | None = None,
        core: Callable | None = None,
    ) -> None:
        super().__init__()
        self.extract_config = extract_config or ExtractConfig()
        self.clean_config = clean_config or CleanConfig()
        self.core = core

    def expand(self, rows):
        results = (
            rows
            | "SpreadPages" >> beam.Reshuffle()
            | "ExtractClean"
            >> beam.ParDo(
                _ExtractClean(self.extract_config, self.clean_config, self.core)
            ).with_outputs(REJECTS, main="docs")
        )
        return results.docs, results[REJECTS]


# --------------------------------------------------------------------------- the stage


def doc_sort_key(row: dict) -> tuple:
    return (row["url"], row["id"])


def _config_dict(config) -> dict:
    return dataclasses.asdict(config)


def _core_name(core: Callable | None) -> str | None:
    return None if core is None else f"{core.__module__}.{core.__qualname__}"


def run_extract(
    fetched_dir: str,
    out: str,
    extract_config: ExtractConfig | None = None,
    clean_config: CleanConfig | None = None,
    options: PipelineOptions | None = None,
    *,
    core: Callable | None = None,
) -> StageSummary:
    """Extract and clean every fetched page; write OUT/clean/part-*.parquet (CLEAN_SCHEMA,
    sorted by url) and OUT/rejects/extract-part-*.parquet (stage "extract" or "clean").

    Checks `in = out + Σ rejects` from the files written (RuntimeError if not). A rerun
    with the same input files (path, size, mtime) and configs reuses the finished output.
    """
    extract_config = extract_config or ExtractConfig()
    clean_config = clean_config or CleanConfig()
    options = options or PipelineOptions(["--runner=DirectRunner"])
    files = list_parquet(fetched_dir, fetched_dir, "run the fetch stage first")
    rows_in = count_rows(files, FETCHED_SCHEMA.names, "a fetched-pages file")
    output_dir = join(out, OUTPUT_DIR)
    if fetched_dir.rstrip("/") == output_dir.rstrip("/"):
        raise InputError(f"{fetched_dir}: is the extract stage's own output folder")
    spec = StageSpec(
        name=STAGE,
        out=out,
        input_pattern=join(fetched_dir, "*.parquet"),
        output_dir=output_dir,
        output_prefix=OUTPUT_PREFIX,
        schema=CLEAN_SCHEMA,
        sort_key=doc_sort_key,
        num_shards=max(1, math.ceil(rows_in / ROWS_PER_SHARD)),
        reject_shards=max(1, math.ceil(rows_in / REJECT_ROWS_PER_SHARD)),
        fingerprint_inputs=[list(f) for f in files],
        fingerprint_options={
            "extract": _config_dict(extract_config),
            "clean": _config_dict(clean_config),
            "core": _core_name(core),
        },
        metadata={
            "webtext.stage": "extract+clean",
            "webtext.extract.timeout_s": str(extract_config.timeout_s),
            "webtext.extract.second_opinion_share": str(extract_config.second_opinion_share),
            "webtext.clean.lang": clean_config.lang,
            "webtext.clean.lang_threshold": str(clean_config.lang_threshold),
            "webtext.clean.min_words": str(clean_config.min_words),
        },
        input_columns=list(FETCHED_SCHEMA.names),
    )
    return run_row_stage(spec, ExtractAndClean(extract_config, clean_config, core), options)
