"""Stage five as a Beam job: exact and MinHash near-duplicate removal that scales out.

    docs ─► Features ─┬─► (exact key → node, signature) ─► GroupByKey ─► ExactGroups ─┐
                      │                                       exact edges ◄──────────┤
                      │                          (band key → representative) ◄───────┘
                      │                                         GroupByKey ─► BucketEdges
                      │                                       candidate edges (x, y), x > y
                      │                                         DistinctEdges (combiner)
                      └─► (id → shingle set) ─┬─► GroupByKey on x: attach x's shingles
                                              └─► GroupByKey on y: verify J(x, y) >= t
    exact edges + verified edges ─► CombineGlobally(UnionFind) ─► (id → cluster label)
         ─► GroupByKey on label ─► survivor rule ─► (id → Decision)       [DedupDecisions]
    docs + decisions ─► GroupByKey on id ─► kept docs (+ dup_cluster, dup_cluster_size)
                                          └► reject rows                  [Deduplicate]
    run_dedup instead groups docs + decisions by output shard and writes each shard
    directly (one shuffle of the documents, not two)                      [WriteDeduplicated]

No step holds more than one group's worth of rows, and the big groups (a
bucket of a million copies, a hub with a million edges) are streamed in two
passes over the grouped values, never listed. The exception is the union-find:
one worker holds every document that has a duplicate edge, at the bytes per
document stated in webtext_pipeline/dedup/clusters.py and docs/dedup.md.
Joins are tagged-union GroupByKeys rather than CoGroupByKey, whose Python
implementation turns each side of a key into a list.

Counters: `webtext:dedup.<reason>` per reject reason, plus dedup.in, dedup.kept,
dedup.exact_groups, dedup.candidate_pairs, dedup.verified_pairs,
dedup.large_buckets, dedup.no_tokens.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import ReadAllFromParquet
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs import stage_state
from beam_jobs.files import InputError, join, write_bytes_atomic
from beam_jobs.new_pipeline import new_pipeline
from beam_jobs.parquet_inputs import footer, list_parquet
from beam_jobs.row_stage import count_parquet_rows, reject_reasons
from beam_jobs.sharded_parquet import (
    GroupWithEveryKey,
    WriteSortedShards,
    shard_name,
    shard_of,
    table_bytes,
)
from webtext_pipeline.dedup import documents, lsh, minhash
from webtext_pipeline.dedup.clusters import (
    UnionFind,
    cluster_decisions,
    exact_edges,
    representative,
)
from webtext_pipeline.dedup.model import STAGE, Decision, DedupParams, Node, rank_key
from webtext_pipeline.records import REJECTS_SCHEMA

NAMESPACE = "webtext"
REJECTS = "rejects"
EDGES = "edges"
PAYLOADS = "payloads"
DOCS_PREFIX = "part"
REJECTS_PREFIX = f"{STAGE}-part"
ROWS_PER_SHARD = 50_000  # WriteSortedShards holds one shard's rows on one worker
BYTES_PER_SHARD = 128 << 20
REJECT_ROWS_PER_SHARD = 1_000_000


def count(name: str, value: int = 1) -> None:
    if value:
        Metrics.counter(NAMESPACE, f"{STAGE}.{name}").inc(value)


def doc_id(doc: dict) -> str:
    return str(doc["id"])


# Nodes and decisions cross shuffles as plain tuples: Beam's FastPrimitivesCoder writes a
# tuple of str/int/bytes in ~47 bytes, but pickles a NamedTuple with its class path (~104).


def _node(wire: tuple) -> Node:
    return Node._make(wire)


class _Mapped:
    """A re-iterable view of grouped values with `fn` applied (each pass maps again)."""

    def __init__(self, values: Iterable, fn) -> None:
        self.values, self.fn = values, fn

    def __iter__(self):
        return map(self.fn, self.values)


def _member(wire: tuple) -> tuple[Node, bytes | None]:
    return Node._make(wire[0]), wire[1]


# --------------------------------------------------------------------------- steps


class Features(beam.DoFn):
    """doc → (exact key, (node, signature)) main; (id, verification payload) tagged."""

    def __init__(self, params: DedupParams) -> None:
        self.params = params

    def process(self, doc: dict) -> Iterator:
        count("in")
        found = documents.features(doc.get("text"), self.params)
        node = documents.doc_node(doc, found)
        if found.signature is None:
            count("no_tokens")
            yield found.exact_key, (tuple(node), None)
            return
        yield found.exact_key, (tuple(node), minhash.to_bytes(found.signature))
        yield beam.pvalue.TaggedOutput(
            PAYLOADS, (node.id, documents.verify_payload(found, self.params))
        )


class ExactGroups(beam.DoFn):
    """One exact group → exact edges (tagged) and its representative's band records."""

    def __init__(self, params: DedupParams) -> None:
        self.layout = params.layout

    def process(self, item: tuple[bytes, Iterable]) -> Iterator:
        _key, values = item
        members = _Mapped(values, _member)
        rep, sig, size = representative(members)
        if size > 1:
            count("exact_groups")
            for x, y in exact_edges(members, rep):
                yield beam.pvalue.TaggedOutput(EDGES, (tuple(x), tuple(y)))
        if sig is not None:
            wire = tuple(rep)
            for key in lsh.band_keys(minhash.from_bytes(sig), self.layout):
                yield key, wire


class BucketEdges(beam.DoFn):
    def __init__(self, params: DedupParams) -> None:
        self.max_bucket = params.max_bucket

    def process(self, item: tuple[bytes, Iterable[tuple]]) -> Iterator:
        _key, values = item
        if next(islice(iter(values), self.max_bucket, None), None) is not None:
            count("large_buckets")
        for x, y in lsh.bucket_edges(_Mapped(values, _node), self.max_bucket):
            yield (x.id, y.id), (tuple(x), tuple(y))


def _edge_rank(edge: tuple[tuple, tuple]) -> tuple:
    return rank_key(_node(edge[0])), rank_key(_node(edge[1]))


def _better_edge(edges: Iterable[tuple[tuple, tuple]]) -> tuple[tuple, tuple]:
    """Of the copies of one candidate pair, the one with the smallest node ranks."""
    return min(edges, key=_edge_rank)


def _best_node(nodes: Iterable[tuple]) -> tuple:
    return min(nodes, key=lambda wire: rank_key(_node(wire)))


def _tag(tag: str):
    return lambda kv: (kv[0], (tag, kv[1]))


def _min_payload(values: Iterable[tuple[str, object]]) -> bytes | None:
    found = None
    for tag, value in values:
        if tag == "p" and (found is None or value < found):
            found = value
    return found


def attach_first(item: tuple[str, Iterable]) -> Iterator:
    """Grouped on x: ("p", payload_x) and ("e", (x, y)) → (y.id, (x, y, payload_x))."""
    _key, values = item
    payload = _min_payload(values)
    if payload is None:
        return
    for tag, value in values:
        if tag == "e":
            x, y = value
            yield y[0], (x, y, payload)


class Verify(beam.DoFn):
    """Grouped on y: ("p", payload_y) and ("h", (x, y, payload_x)) → verified edges."""

    def __init__(self, params: DedupParams) -> None:
        self.params = params

    def process(self, item: tuple[str, Iterable]) -> Iterator:
        _key, values = item
        payload_y = _min_payload(values)
        if payload_y is None:
            return
        checked = verified = 0
        for tag, value in values:
            if tag != "h":
                continue
            x, y, payload_x = value
            checked += 1
            if documents.is_duplicate(
                documents.similarity(payload_x, payload_y, self.params), self.params
            ):
                verified += 1
                yield x, y
        count("candidate_pairs", checked)
        count("verified_pairs", verified)


class UnionFindFn(beam.CombineFn):
    """All duplicate edges → one UnionFind (partial ones per bundle, merged)."""

    def create_accumulator(self) -> UnionFind:
        return UnionFind()

    def add_input(self, acc: UnionFind, edge: tuple[str, str]) -> UnionFind:
        acc.union(*edge)
        return acc

    def merge_accumulators(self, accs: Iterable[UnionFind]) -> UnionFind:
        accs = iter(accs)
        merged = next(accs)
        for acc in accs:
            merged.merge(acc)
        return merged

    def extract_output(self, acc: UnionFind) -> UnionFind:
        return acc


def _label_nodes(item: tuple[str, Iterable]) -> Iterator:
    """Grouped on id: ("l", label) and ("n", node) → (label, node)."""
    _key, values = item
    label, node = None, None
    for tag, value in values:
        if tag == "l":
            label = value
        else:
            node = value
    if label is not None and node is not None:
        yield label, node


def _decide(item: tuple[str, Iterable[tuple]]) -> Iterator:
    _label, nodes = item
    for node_id, decision in cluster_decisions(_Mapped(nodes, _node)):
        yield node_id, tuple(decision)


def _route(item: tuple[str, Iterable]) -> Iterator:
    key, values = item
    docs = [value for tag, value in values if tag == "d"]
    if not docs:
        return
    decisions = [Decision._make(value) for tag, value in values if tag == "k"]
    kept, rejects = documents.route(key, docs, decisions)
    reasons = Counter(row["reason"] for row in rejects)
    count("kept", len(kept))
    for reason, n in reasons.items():
        count(reason, n)
    yield from kept
    for row in rejects:
        yield beam.pvalue.TaggedOutput(REJECTS, row)


class DedupDecisions(beam.PTransform):
    """PCollection of document dicts → (id, Decision) for every document that has a duplicate.

    Documents without one get no decision: they are kept as clusters of one.
    """

    def __init__(self, params: DedupParams | None = None) -> None:
        super().__init__()
        self.params = params or DedupParams()

    def expand(self, docs):
        params = self.params
        features = docs | "Features" >> beam.ParDo(Features(params)).with_outputs(
            PAYLOADS, main="exact"
        )
        grouped = (
            features.exact
            | "GroupExact" >> beam.GroupByKey()
            | "ExactGroups" >> beam.ParDo(ExactGroups(params)).with_outputs(EDGES, main="bands")
        )
        candidates = (
            grouped.bands
            | "GroupBuckets" >> beam.GroupByKey()
            | "BucketEdges" >> beam.ParDo(BucketEdges(params))
            | "DistinctEdges" >> beam.CombinePerKey(_better_edge)
            | "DropPairKey" >> beam.Values()
        )
        payloads = features[PAYLOADS]
        half = (
            (
                payloads | "PayloadByX" >> beam.Map(_tag("p")),
                candidates | "EdgeByX" >> beam.Map(lambda e: (e[0][0], ("e", e))),
            )
            | "FlattenX" >> beam.Flatten()
            | "GroupX" >> beam.GroupByKey()
            | "AttachX" >> beam.FlatMap(attach_first)
        )
        verified = (
            (
                payloads | "PayloadByY" >> beam.Map(_tag("p")),
                half | "HalfByY" >> beam.Map(_tag("h")),
            )
            | "FlattenY" >> beam.Flatten()
            | "GroupY" >> beam.GroupByKey()
            | "Verify" >> beam.ParDo(Verify(params))
        )
        dup_edges = (grouped[EDGES], verified) | "AllDupEdges" >> beam.Flatten()
        labels = (
            dup_edges
            | "EdgeIds" >> beam.Map(lambda e: (e[0][0], e[1][0]))
            | "UnionFind" >> beam.CombineGlobally(UnionFindFn())
            | "Labels" >> beam.FlatMap(lambda finder: finder.labels())
        )
        nodes = (
            dup_edges
            | "EdgeNodes" >> beam.FlatMap(lambda e: ((e[0][0], e[0]), (e[1][0], e[1])))
            | "OneNodePerId" >> beam.CombinePerKey(_best_node)
        )
        return (
            (labels | "TagLabel" >> beam.Map(_tag("l")), nodes | "TagNode" >> beam.Map(_tag("n")))
            | "FlattenLabels" >> beam.Flatten()
            | "GroupLabelsById" >> beam.GroupByKey()
            | "LabelNodes" >> beam.FlatMap(_label_nodes)
            | "GroupClusters" >> beam.GroupByKey()
            | "Decide" >> beam.FlatMap(_decide)
        )


class Deduplicate(beam.PTransform):
    """PCollection of document dicts (id, text, optional reddit_score/score, created_utc)
    → (kept documents with dup_cluster and dup_cluster_size, reject row dicts)."""

    def __init__(self, params: DedupParams | None = None) -> None:
        super().__init__()
        self.params = params or DedupParams()

    def expand(self, docs):
        decisions = docs | "Decisions" >> DedupDecisions(self.params)
        routed = (
            (
                docs | "DocById" >> beam.Map(lambda doc: (doc_id(doc), ("d", doc))),
                decisions | "TagDecision" >> beam.Map(_tag("k")),
            )
            | "FlattenDocs" >> beam.Flatten()
            | "GroupDocs" >> beam.GroupByKey()
            | "Route" >> beam.FlatMap(_route).with_outputs(REJECTS, main="kept")
        )
        return routed.kept, routed[REJECTS]


class _RouteAndWriteShard(beam.DoFn):
    """One output shard: its documents and their decisions → the sorted Parquet file,
    reject rows (tagged) and (path, rows). Same file names and bytes as WriteSortedShards."""

    def __init__(self, out_dir, schema, num_shards, metadata) -> None:
        self.out_dir, self.schema = out_dir, schema
        self.num_shards, self.metadata = num_shards, metadata

    def process(self, element: tuple[int, Iterable]) -> Iterator:
        index, values = element
        docs: dict[str, list[dict]] = {}
        decisions: dict[str, list] = {}
        for tag, value in values:
            if tag == "d":
                docs.setdefault(doc_id(value), []).append(value)
            elif tag == "k":
                decisions.setdefault(value[0], []).append(Decision._make(value[1]))
        kept_rows, reasons = [], Counter()
        for key in sorted(docs):
            kept, rejects = documents.route(key, docs.pop(key), decisions.get(key, ()))
            kept_rows.extend(kept)
            for row in rejects:
                reasons[row["reason"]] += 1
                yield beam.pvalue.TaggedOutput(REJECTS, row)
        count("kept", len(kept_rows))
        for reason, n in reasons.items():
            count(reason, n)
        kept_rows.sort(key=doc_sort_key)
        path = join(self.out_dir, shard_name(DOCS_PREFIX, index, self.num_shards))
        write_bytes_atomic(path, table_bytes(kept_rows, self.schema, self.metadata))
        yield path, len(kept_rows)


class WriteDeduplicated(beam.PTransform):
    """(docs, decisions) → OUT/<kept>/part-*.parquet in one shuffle of the documents
    (grouped by output shard, not by id and then again by shard); returns reject rows.

    A document goes to shard_of(repr((id,))), as WriteSortedShards with sort key
    (id,) would put it, so both paths write the same files.
    """

    def __init__(self, out_dir, schema, num_shards, metadata=None) -> None:
        super().__init__()
        self.out_dir, self.schema = out_dir, schema
        self.num_shards, self.metadata = max(1, num_shards), metadata or {}

    def expand(self, pcolls):
        docs, decisions = pcolls
        n = self.num_shards
        written = (
            (
                docs | "DocByShard" >> beam.Map(
                    lambda doc: (shard_of(repr((doc_id(doc),)), n), ("d", doc))
                ),
                decisions | "DecisionByShard" >> beam.Map(
                    lambda kv: (shard_of(repr((kv[0],)), n), ("k", kv))
                ),
            )
            | "GroupEveryShard" >> GroupWithEveryKey(n, marker=("e", None))
            | "RouteAndWrite" >> beam.ParDo(
                _RouteAndWriteShard(self.out_dir, self.schema, n, self.metadata)
            ).with_outputs(REJECTS, main="written")
        )
        return written[REJECTS]


# --------------------------------------------------------------------------- the stage


@dataclass
class DedupSummary:
    rows_in: int = 0
    kept: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False
    layout: tuple[int, int] = (0, 0)
    files: int = 0

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.kept + sum(self.rejects.values())

    def as_dict(self) -> dict:
        return {
            "stage": STAGE, "in": self.rows_in, "out": self.kept, "rejects": self.rejects,
            "seconds": self.seconds, "balanced": self.balanced, "layout": list(self.layout),
            "files": self.files,
        }


def reject_sort_key(row: dict) -> tuple:
    return (row["stage"], row["key"], row["reason"], row["detail"])


def doc_sort_key(row: dict) -> tuple:
    return (str(row["id"]),)


def input_files(in_dir: str) -> list[tuple[str, int, float]]:
    """(path, size, mtime) of every *.parquet directly in in_dir, sorted; InputError if none."""
    return list_parquet(in_dir, f"--in {in_dir}", "a folder of Parquet documents")


def inspect_inputs(files: list[tuple[str, int, float]]) -> tuple[pa.Schema, int, int]:
    """The unified schema, row count and uncompressed bytes of the inputs (footers only)."""
    schemas, rows, nbytes = [], 0, 0
    for path, _size, _mtime in files:
        meta = footer(path)
        schemas.append(meta.schema.to_arrow_schema())
        rows += meta.num_rows
        nbytes += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    try:
        schema = pa.unify_schemas(schemas)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"input files disagree on their columns ({exc})") from None
    missing = [name for name in ("id", "text") if name not in schema.names]
    if missing:
        raise InputError(f"{files[0][0]}: no {' or '.join(missing)} column (dedup needs id, text)")
    return schema.remove_metadata(), rows, nbytes


def output_schema(schema: pa.Schema) -> pa.Schema:
    """The input columns (nullable if not in every file) plus dup_cluster, dup_cluster_size."""
    fields = [f for f in schema if f.name not in documents.CLUSTER_COLUMNS]
    fields += [
        pa.field("dup_cluster", pa.string(), nullable=False),
        pa.field("dup_cluster_size", pa.int64(), nullable=False),
    ]
    return pa.schema(fields)


def run_dedup(
    in_dir: str,
    out_dir: str,
    options: PipelineOptions,
    params: DedupParams | None = None,
    num_shards: int | None = None,
    kept_subdir: str = "docs",
) -> DedupSummary:
    """Read every *.parquet in in_dir, deduplicate, write OUT/<kept_subdir>/part-*.parquet and
    OUT/rejects/dedup-part-*.parquet, and check in = kept + Σ rejects from the files.

    A rerun with the same input files and parameters reuses the finished output
    (OUT/<kept_subdir>/_stage.json holds the fingerprint). `webtext dedup` writes the kept
    documents to OUT/docs; `webtext build` to OUT/dedup, the input of the corpus shards.
    """
    params = params or DedupParams()
    files = input_files(in_dir)
    schema, rows_in, nbytes = inspect_inputs(files)
    docs_dir, rejects_dir = join(out_dir, kept_subdir), join(out_dir, "rejects")
    if FileSystems.join(in_dir.rstrip("/"), "") == FileSystems.join(docs_dir.rstrip("/"), ""):
        raise InputError(f"--in {in_dir}: is the output folder itself; pick another --out")
    layout = params.layout
    fingerprint = stage_state.fingerprint(STAGE, files, params.fingerprint())
    done = stage_state.reusable(docs_dir, fingerprint)
    if done:
        return DedupSummary(
            rows_in=done["in"],
            kept=done["out"],
            rejects=dict(sorted(done["rejects"].items(), key=lambda kv: (-kv[1], kv[0]))),
            seconds=done["seconds"], reused=True, layout=tuple(done["layout"]),
            files=len(files),
        )
    docs_glob = join(docs_dir, f"{DOCS_PREFIX}-*.parquet")
    rejects_glob = join(rejects_dir, f"{REJECTS_PREFIX}-*.parquet")
    stage_state.clear_outputs([join(docs_dir, stage_state.STAGE_FILE), docs_glob, rejects_glob])
    shards = num_shards or max(
        1, math.ceil(rows_in / ROWS_PER_SHARD), math.ceil(nbytes / BYTES_PER_SHARD)
    )
    metadata = {f"webtext.dedup.{k}": str(v) for k, v in params.fingerprint().items()}
    started = time.monotonic()
    pipeline = new_pipeline(options)
    docs = (
        pipeline
        | "InputFiles" >> beam.Create([path for path, _size, _mtime in files])
        | "ReadParquet" >> ReadAllFromParquet()
    )
    decisions = docs | "Dedup" >> DedupDecisions(params)
    rejects = (docs, decisions) | "WriteDocs" >> WriteDeduplicated(
        docs_dir, output_schema(schema), shards, metadata
    )
    _ = rejects | "WriteRejects" >> WriteSortedShards(
        rejects_dir, REJECTS_PREFIX, REJECTS_SCHEMA,
        max(1, math.ceil(rows_in / REJECT_ROWS_PER_SHARD)), reject_sort_key,
    )
    pipeline.run().wait_until_finish()
    summary = DedupSummary(
        rows_in=rows_in,
        kept=count_parquet_rows(docs_glob),
        rejects=reject_reasons(rejects_glob),
        seconds=round(time.monotonic() - started, 3),
        layout=(layout.bands, layout.rows),
        files=len(files),
    )
    if not summary.balanced:
        raise RuntimeError(
            f"dedup stage: {summary.rows_in} in ≠ {summary.kept} kept + "
            f"{sum(summary.rejects.values())} rejected"
        )
    stage_state.mark_complete(docs_dir, fingerprint, summary.as_dict())
    return summary
