"""The corpus shards as a Beam stage: OUT/dedup/part-* → OUT/docs/shard-NNNNN-of-NNNNN.parquet.

Each deduplicated document is projected to DOCS_SCHEMA and given its split
(webtext_pipeline.shards), hashed by id to one of N shards, and each shard is
sorted by id and written zstd-compressed under a temporary name, then renamed
(beam_jobs.sharded_parquet). N comes from the input's bytes and the size
target, so the layout depends only on the data and the options.

Memory: one shard's rows are sorted on one worker; at the default 256 MB
(compressed) target that is roughly 0.7 GB of text, ~1.5 GB as Python rows.
Lower --shard-size on small workers.
"""

from __future__ import annotations

from functools import partial

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.files import InputError, join
from beam_jobs.row_stage import StageSpec, StageSummary, run_row_stage
from beam_jobs.stage_state import read_stage
from webtext_pipeline.records import DOCS_SCHEMA
from webtext_pipeline.shards import DOCS_ROW_GROUP_ROWS, doc_row, shard_count

STAGE = "shards"
PREFIX = "shard"
STATE_DIR = "docs-state"  # the stage's _stage.json: OUT/docs holds only the shards


class ToDocRows(beam.PTransform):
    """Dedup rows → (DOCS_SCHEMA rows, no rejects): the stage drops nothing."""

    def __init__(self, val_fraction: float) -> None:
        super().__init__()
        self.val_fraction = val_fraction

    def expand(self, rows):
        docs = rows | "ToDocRow" >> beam.Map(partial(doc_row, val_fraction=self.val_fraction))
        nothing = rows.pipeline | "NoRejects" >> beam.Create([])
        return docs, nothing


def _doc_id(row: dict) -> tuple:
    return (row["id"],)


def input_bytes(pattern: str) -> int:
    return sum(m.size_in_bytes for m in FileSystems.match([pattern])[0].metadata_list)


def run_shards(
    dedup_dir: str,
    out: str,
    options: PipelineOptions,
    shard_bytes: int,
    val_fraction: float,
) -> StageSummary:
    """Write the corpus shards from the dedup output (reused when nothing changed)."""
    pattern = join(dedup_dir, "part-*.parquet")
    upstream = read_stage(dedup_dir)
    if not upstream or not upstream.get("complete"):
        raise InputError(f"{dedup_dir}: no finished dedup output to shard")
    spec = StageSpec(
        name=STAGE,
        out=out,
        input_pattern=pattern,
        output_dir=join(out, "docs"),
        output_prefix=PREFIX,
        schema=DOCS_SCHEMA,
        sort_key=_doc_id,
        num_shards=shard_count(input_bytes(pattern), shard_bytes),
        reject_shards=0,
        fingerprint_inputs=upstream["fingerprint"],
        fingerprint_options={"shard_bytes": shard_bytes, "val_fraction": val_fraction},
        metadata={"webtext.stage": STAGE, "webtext.val_fraction": repr(val_fraction)},
        row_group_rows=DOCS_ROW_GROUP_ROWS,
        state_dir=join(out, STATE_DIR),
    )
    return run_row_stage(spec, ToDocRows(val_fraction), options)
