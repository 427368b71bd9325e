"""The whole dedup stage in one process: the reference the Beam job must agree with.

Same functions, same order of steps as beam_jobs.dedup_job.Deduplicate, with
dicts in place of GroupByKeys. Used by the tests (the Beam output must equal
this, document for document) and by the quality benchmark; not meant for big
inputs (it holds every signature and shingle set in memory).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import combinations

from webtext_pipeline.dedup import documents, lsh, minhash
from webtext_pipeline.dedup.clusters import (
    UnionFind,
    cluster_decisions,
    exact_edges,
    representative,
)
from webtext_pipeline.dedup.model import DedupParams, Node, rank_key


@dataclass
class LocalResult:
    kept: list[dict]
    rejects: list[dict]
    candidate_pairs: set[tuple[str, str]] = field(default_factory=set)
    verified: dict[tuple[str, str], float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    exact_groups: dict[str, list[str]] = field(default_factory=dict)
    large_buckets: int = 0

    def duplicate_pairs(self) -> set[tuple[str, str]]:
        """Every pair the stage declared a duplicate, (larger id, smaller id): the pairs of
        each exact group, and each verified edge spread over both ends' exact groups."""
        pairs = set()
        for members in self.exact_groups.values():
            pairs.update(_pairs(members))
        for x, y in self.verified:
            for a in self.exact_groups.get(x, [x]):
                for b in self.exact_groups.get(y, [y]):
                    pairs.add((a, b) if a > b else (b, a))
        return pairs

    def cluster_pairs(self) -> set[tuple[str, str]]:
        """Every pair of documents that ended in one cluster (transitive links included)."""
        clusters: dict[str, list[str]] = defaultdict(list)
        for node_id, label in self.labels.items():
            clusters[label].append(node_id)
        pairs = set()
        for members in clusters.values():
            pairs.update(_pairs(members))
        return pairs


def _pairs(members: list[str]) -> Iterator[tuple[str, str]]:
    for a, b in combinations(sorted(set(members)), 2):
        yield (b, a)


def dedup_local(docs: Iterable[dict], params: DedupParams) -> LocalResult:
    docs = list(docs)
    layout = params.layout
    by_id: dict[str, list[dict]] = defaultdict(list)
    exact: dict[bytes, list[tuple[Node, bytes | None]]] = defaultdict(list)
    payloads: dict[str, list[bytes]] = defaultdict(list)
    for doc in docs:
        found = documents.features(doc.get("text"), params)
        node = documents.doc_node(doc, found)
        by_id[node.id].append(doc)
        sig = None if found.signature is None else minhash.to_bytes(found.signature)
        exact[found.exact_key].append((node, sig))
        if found.signature is not None:
            payloads[node.id].append(documents.verify_payload(found, params))

    dup_edges: list[tuple[Node, Node]] = []
    exact_groups: dict[str, list[str]] = {}
    buckets: dict[bytes, list[Node]] = defaultdict(list)
    for members in exact.values():
        rep, sig, size = representative(members)
        if size > 1:
            dup_edges.extend(exact_edges(members, rep))
            exact_groups[rep.id] = [node.id for node, _sig in members]
        if sig is not None:
            for key in lsh.band_keys(minhash.from_bytes(sig), layout):
                buckets[key].append(rep)

    result = LocalResult([], [], exact_groups=exact_groups)
    candidates: dict[tuple[str, str], tuple[Node, Node]] = {}
    for members in buckets.values():
        if len(members) < 2:
            continue
        if len(members) > params.max_bucket:
            result.large_buckets += 1
        for x, y in lsh.bucket_edges(members, params.max_bucket):
            pair = (x.id, y.id)
            if pair not in candidates or (rank_key(x), rank_key(y)) < tuple(
                rank_key(n) for n in candidates[pair]
            ):
                candidates[pair] = (x, y)
    result.candidate_pairs = set(candidates)
    for (x_id, y_id), (x, y) in sorted(candidates.items()):
        value = documents.similarity(min(payloads[x_id]), min(payloads[y_id]), params)
        if documents.is_duplicate(value, params):
            result.verified[(x_id, y_id)] = value
            dup_edges.append((x, y))

    finder = UnionFind()
    nodes: dict[str, Node] = {}
    for x, y in dup_edges:
        finder.union(x.id, y.id)
        for node in (x, y):
            if node.id not in nodes or rank_key(node) < rank_key(nodes[node.id]):
                nodes[node.id] = node
    result.labels = dict(finder.labels())
    clusters: dict[str, list[Node]] = defaultdict(list)
    for node_id, label in result.labels.items():
        clusters[label].append(nodes[node_id])
    decisions = {}
    for members in clusters.values():
        decisions.update(cluster_decisions(members))

    for doc_id in sorted(by_id):
        decision = decisions.get(doc_id)
        kept, rejects = documents.route(doc_id, by_id[doc_id], [decision] if decision else [])
        result.kept.extend(kept)
        result.rejects.extend(rejects)
    return result
