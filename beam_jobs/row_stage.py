"""Run one row-in, row-out stage as its own Beam pipeline, with its books balanced.

fetch, extract+clean and dedup share this shape: read the previous stage's
Parquet rows, apply a transform that returns (outputs, rejects), write both as
deterministic shards, then check `in = out + Σ rejects` from the files
written and record the result (and a fingerprint, for reuse) in
`<stage dir>/_stage.json`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import progress, stage_state
from beam_jobs.files import join
from beam_jobs.new_pipeline import new_pipeline
from beam_jobs.sharded_parquet import ROW_GROUP_ROWS, WriteSortedShards
from webtext_pipeline.records import REJECTS_SCHEMA

NAMESPACE = "webtext"


def reject_sort_key(row: dict) -> tuple:
    return (row["stage"], row["key"], row["reason"], row["detail"])


@dataclass
class StageSpec:
    """Where a stage reads and writes, and how it is identified for reuse."""

    name: str
    out: str
    input_pattern: str
    output_dir: str
    output_prefix: str
    schema: pa.Schema
    sort_key: Callable[[dict], tuple]
    num_shards: int
    reject_shards: int
    fingerprint_inputs: object
    fingerprint_options: dict
    metadata: dict[str, str] = field(default_factory=dict)
    input_columns: list[str] | None = None
    row_group_rows: int = ROW_GROUP_ROWS
    # Where _stage.json goes (default: output_dir). The corpus keeps it out of OUT/docs so
    # that folder holds nothing but Parquet (datasets' "parquet" loader reads every file).
    state_dir: str | None = None

    @property
    def marker_dir(self) -> str:
        return self.state_dir or self.output_dir

    @property
    def rejects_prefix(self) -> str:
        return f"{self.name}-part"


@dataclass
class StageSummary:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False
    fingerprint: str = ""

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + sum(self.rejects.values())

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "in": self.rows_in,
            "out": self.rows_out,
            "rejects": self.rejects,
            "seconds": self.seconds,
            "balanced": self.balanced,
        }


def count_rows_in(stage: str):
    counter = Metrics.counter(NAMESPACE, f"{stage}.in")

    def _count(row):
        counter.inc()
        progress.tick(f"{stage}: rows in")
        return row

    return _count


def count_parquet_rows(pattern: str) -> int:
    matches = FileSystems.match([pattern])[0].metadata_list
    total = 0
    for meta in matches:
        with FileSystems.open(meta.path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def reject_reasons(pattern: str) -> dict[str, int]:
    reasons: Counter = Counter()
    for meta in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(meta.path) as handle:
            reasons.update(pq.read_table(handle, columns=["reason"]).column("reason").to_pylist())
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def run_row_stage(
    spec: StageSpec,
    transform: beam.PTransform,
    options: PipelineOptions,
) -> StageSummary:
    """Run (or reuse) one stage; `transform` maps input rows to (outputs, rejects)."""
    expected = stage_state.fingerprint(spec.name, spec.fingerprint_inputs, spec.fingerprint_options)
    done = stage_state.reusable(spec.marker_dir, expected)
    if done:
        return StageSummary(
            stage=spec.name, rows_in=done["in"], rows_out=done["out"], rejects=done["rejects"],
            seconds=done["seconds"], reused=True, fingerprint=expected,
        )
    rejects_glob = join(spec.out, "rejects", f"{spec.rejects_prefix}-*.parquet")
    stage_state.clear_outputs(
        [join(spec.marker_dir, stage_state.STAGE_FILE), join(spec.output_dir, "*"), rejects_glob]
    )
    started = time.monotonic()
    pipeline = new_pipeline(options)
    rows = (
        pipeline
        | "Read" >> beam.io.ReadFromParquet(spec.input_pattern, columns=spec.input_columns)
        | "CountIn" >> beam.Map(count_rows_in(spec.name))
    )
    outputs, rejects = rows | spec.name.title() >> transform
    _ = outputs | "WriteOutputs" >> WriteSortedShards(
        spec.output_dir, spec.output_prefix, spec.schema, spec.num_shards, spec.sort_key,
        spec.metadata, spec.row_group_rows,
    )
    if spec.reject_shards:  # 0: a stage that never rejects writes no reject files
        _ = rejects | "WriteRejects" >> WriteSortedShards(
            join(spec.out, "rejects"), spec.rejects_prefix, REJECTS_SCHEMA, spec.reject_shards,
            reject_sort_key,
        )
    pipeline.run().wait_until_finish()
    summary = StageSummary(
        stage=spec.name,
        rows_in=count_parquet_rows(spec.input_pattern),
        rows_out=count_parquet_rows(join(spec.output_dir, f"{spec.output_prefix}-*.parquet")),
        rejects=reject_reasons(rejects_glob),
        seconds=round(time.monotonic() - started, 3),
        fingerprint=expected,
    )
    if not summary.balanced:  # checked before the marker: an unbalanced stage is never reused
        raise RuntimeError(
            f"{spec.name} stage: {summary.rows_in} in ≠ {summary.rows_out} out + "
            f"{sum(summary.rejects.values())} rejected"
        )
    stage_state.mark_complete(spec.marker_dir, expected, summary.as_dict())
    return summary
