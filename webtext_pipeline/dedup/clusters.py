"""From duplicate edges to clusters and decisions: exact groups, union-find, the survivor rule.

Exact duplicates (equal normalised text) are grouped by their exact key. Each
group sends one representative (its smallest id) to LSH and links every other
member to it with an edge that needs no verification (Jaccard 1). Verified
near-duplicate edges join them, and the connected components of all those
edges are the clusters: in each, the survivor is the best `rank_key` (highest
Reddit score, then earliest post, then smallest id); every other member is an
`exact_duplicate` when its normalised text equals the survivor's, else a
`near_duplicate`.

Components are computed by `UnionFind`, on one worker, over the documents that
have at least one duplicate edge (documents without one never enter it). Its
memory is the intern table: a dict id -> index, the id strings and an int64
parent array. Measured by benchmarks/bench_dedup.py (tracemalloc): about
140 bytes per clustered document with 16-character ids (75 B of structure, 65 B
of id string; docs/dedup.md), so 100M documents of which a quarter have a
duplicate need about 3.5 GB on that one worker. ~300k unions a second.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

from webtext_pipeline.dedup.model import Decision, Node, rank_key


class UnionFind:
    """Disjoint sets over string ids; path halving; labels are each set's smallest id."""

    __slots__ = ("index", "ids", "parent")

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.parent = array("q")

    def __len__(self) -> int:
        return len(self.ids)

    def _node(self, key: str) -> int:
        found = self.index.get(key)
        if found is None:
            found = len(self.ids)
            self.index[key] = found
            self.ids.append(key)
            self.parent.append(found)
        return found

    def _find(self, node: int) -> int:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self._find(self._node(a)), self._find(self._node(b))
        if root_a != root_b:
            if root_a < root_b:
                self.parent[root_b] = root_a
            else:
                self.parent[root_a] = root_b

    def add(self, key: str) -> None:
        self._node(key)

    def merge(self, other: UnionFind) -> UnionFind:
        """Fold another union-find (a partial result from another bundle) into this one."""
        for node, key in enumerate(other.ids):
            root = other._find(node)
            if root == node:
                self._node(key)
            else:
                self.union(key, other.ids[root])
        return self

    def labels(self) -> Iterator[tuple[str, str]]:
        """(id, label) for every id, the label being the smallest id of its set."""
        smallest: dict[int, str] = {}
        for node, key in enumerate(self.ids):
            root = self._find(node)
            current = smallest.get(root)
            if current is None or key < current:
                smallest[root] = key
        for node, key in enumerate(self.ids):
            yield key, smallest[self._find(node)]

    def __getstate__(self):
        for node in range(len(self.ids)):
            self.parent[node] = self._find(node)
        return self.ids, self.parent.tobytes()

    def __setstate__(self, state) -> None:
        ids, parent = state
        self.ids = list(ids)
        self.index = {key: node for node, key in enumerate(self.ids)}
        self.parent = array("q")
        self.parent.frombytes(parent)


def components(edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """id -> component label (smallest id) for every id on an edge."""
    finder = UnionFind()
    for a, b in edges:
        finder.union(a, b)
    return dict(finder.labels())


def representative(members: Iterable[tuple[Node, bytes | None]]) -> tuple[Node, bytes | None, int]:
    """An exact group's representative (smallest id), its signature, and the group's size.

    One pass, constant memory; `members` are (Node, signature bytes) pairs.
    """
    best, best_key, best_sig, size = None, None, None, 0
    for node, sig in members:
        size += 1
        key = (node.id, rank_key(node))
        if best_key is None or key < best_key:
            best, best_key, best_sig = node, key, sig
    return best, best_sig, size


def exact_edges(members: Iterable[tuple[Node, bytes | None]], rep: Node) -> Iterator[tuple]:
    """Every other member of an exact group linked to its representative."""
    for node, _sig in members:
        if node.id != rep.id:
            yield node, rep


def cluster_decisions(nodes: Iterable[Node]) -> Iterator[tuple[str, Decision]]:
    """Decisions for one cluster (each id once); two passes, constant memory."""
    best, best_key, size = None, None, 0
    for node in nodes:
        size += 1
        key = rank_key(node)
        if best_key is None or key < best_key:
            best, best_key = node, key
    for node in nodes:
        if node.id == best.id:
            yield node.id, Decision(best.id, size, None)
        elif node.exact_key == best.exact_key:
            yield node.id, Decision(best.id, size, "exact_duplicate")
        else:
            yield node.id, Decision(best.id, size, "near_duplicate")
