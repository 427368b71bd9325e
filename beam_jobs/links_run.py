"""Run the links stage end to end and account for every record it read.

The balance is checked from the files written, not only from counters:
records read (counter) = Σ n_posts over link rows + Σ reject rows.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import stage_state
from beam_jobs.files import join
from beam_jobs.links_job import NAMESPACE, RECORDS_READ, ExtractLinks, write_links, write_rejects
from beam_jobs.new_pipeline import new_pipeline
from beam_jobs.options import is_local
from webtext_pipeline.links.submissions import LinkRules

BYTES_PER_LINK_SHARD = 1 << 30  # ~1 GiB of compressed dumps per links shard
REJECT_SHARDS_PER_LINK_SHARD = 4


@dataclass
class LinksSummary:
    """What the links stage read, kept and dropped; written to links/_stage.json."""

    files: list[dict]
    skipped_files: list[str]
    rules: dict
    records_read: int = 0
    posts_kept: int = 0
    links: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @property
    def balanced(self) -> bool:
        return self.records_read == self.posts_kept + self.rejected


def shard_counts(files: list[tuple[str, int]]) -> tuple[int, int]:
    """Links and reject shard counts from the input size, so one shard fits one worker."""
    total = sum(size for _, size in files)
    links = 1 + total // BYTES_PER_LINK_SHARD
    return links, links * REJECT_SHARDS_PER_LINK_SHARD


def build_links_pipeline(
    pipeline: beam.Pipeline,
    files: list[str],
    rules: LinkRules,
    out: str,
    shards: tuple[int, int],
    spread_lines: bool = False,
) -> None:
    """Add the links stage to `pipeline`, writing OUT/links and OUT/rejects."""
    metadata = {
        "webtext.stage": "links",
        "webtext.karma": rules.karma,
        "webtext.min_karma": str(rules.min_karma),
        "webtext.cutoff": rules.cutoff,
    }
    paths = pipeline | "DumpFiles" >> beam.Create(files)
    links, rejects = paths | "Links" >> ExtractLinks(rules, spread_lines)
    write_links(links, join(out, "links"), shards[0], metadata)
    write_rejects(rejects, join(out, "rejects"), "links", shards[1])


def _counter(result, name: str) -> int:
    query = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE).with_name(name))
    return sum(c.committed or 0 for c in query["counters"])


def _read_columns(directory: str, prefix: str, columns: list[str]) -> list[dict]:
    matches = FileSystems.match([join(directory, f"{prefix}-*.parquet")])[0].metadata_list
    tables = []
    for meta in sorted(matches, key=lambda m: m.path):
        with FileSystems.open(meta.path) as handle:
            tables.append(pq.read_table(handle, columns=columns).to_pydict())
    return tables


def summarize(out: str, records_read: int, summary: LinksSummary) -> LinksSummary:
    """Fill the summary's counts from the written files."""
    for table in _read_columns(join(out, "links"), "part", ["n_posts"]):
        summary.links += len(table["n_posts"])
        summary.posts_kept += sum(table["n_posts"])
    reasons: Counter = Counter()
    for table in _read_columns(join(out, "rejects"), "links-part", ["reason"]):
        reasons.update(table["reason"])
    summary.rejects = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    summary.records_read = records_read
    return summary


def _rules_dict(rules: LinkRules) -> dict:
    return {k: v for k, v in asdict(rules).items() if not k.startswith("_")}


def _rules_fingerprint(rules: LinkRules) -> dict:
    """The rules plus the blocklists' contents, so editing a list invalidates the stage."""
    lists = {name: sorted(entries) for name, entries in rules.lists().items()}
    return _rules_dict(rules) | {"lists": lists}


def run_links(
    files: list[tuple[str, int]],
    skipped: list[str],
    rules: LinkRules,
    out: str,
    options: PipelineOptions,
) -> LinksSummary:
    """Run the links stage (or reuse its finished output) and return its checked summary."""
    stage_dir = join(out, "links")
    expected = stage_state.fingerprint("links", files, _rules_fingerprint(rules))
    done = stage_state.reusable(stage_dir, expected)
    if done:
        fields = {k: done[k] for k in LinksSummary.__dataclass_fields__ if k in done}
        return LinksSummary(**fields | {"reused": True})
    stage_state.clear_outputs(
        [join(stage_dir, "*"), join(out, "rejects", "links-part-*.parquet")]
    )
    started = time.monotonic()
    shards = shard_counts(files)
    pipeline = new_pipeline(options)
    paths = [path for path, _ in files]
    spread = not is_local(options)
    build_links_pipeline(pipeline, paths, rules, out, shards, spread_lines=spread)
    result = pipeline.run()
    result.wait_until_finish()
    summary = LinksSummary(
        files=[{"path": path, "bytes": size} for path, size in files],
        skipped_files=skipped,
        rules=_rules_dict(rules),
    )
    summarize(out, _counter(result, RECORDS_READ), summary)
    summary.seconds = round(time.monotonic() - started, 3)
    stage_state.mark_complete(stage_dir, expected, asdict(summary) | {"balanced": summary.balanced})
    return summary
