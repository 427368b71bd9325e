"""LSH banding without an index: band keys per document, candidate edges per bucket.

A signature of `num_perm` values is cut into `bands` bands of `rows` values;
two documents become candidates when any band is equal. For a pair with
Jaccard s the chance of that is the S-curve

    P(s) = 1 - (1 - s**rows) ** bands

datasketch picks (bands, rows) by minimising a weighted sum of the areas of
false positives below the threshold and false negatives above it, which for
threshold 0.8 and 128 permutations gives 9 x 13 and P(0.8) = 0.40: a pair right
at the threshold is found 40 % of the time. Here a candidate is only a
candidate (verification removes the false ones), so a miss costs far more than
a false candidate: `choose_layout` asks for P(threshold) >= min_recall (0.995)
and, among the layouts that meet it, takes the one with the smallest area
under the S-curve below the threshold (the fewest candidates to verify).
For 0.8 and 128 permutations that is 18 bands x 6 rows (P(0.8) = 0.9958).

A bucket (one band value shared by several documents) turns into candidate
edges: all pairs while it has at most `max_bucket` members, otherwise a star
from every member to the bucket's smallest id, so a bucket of a million
near-identical pages costs a million edges, not 5e11. Edges are oriented
(larger id, smaller id) so a star's hub is always the second end, which is the
end the verification join gathers once (see beam_jobs.dedup_job).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations, islice

import numpy as np

from webtext_pipeline.dedup.model import rank_key
from webtext_pipeline.dedup.shingles import fmix64

_BAND_MIX = np.uint64(0xBF58476D1CE4E5B9)


@dataclass(frozen=True)
class BandLayout:
    bands: int
    rows: int

    @property
    def used(self) -> int:
        """Permutations the bands use (the rest of the signature is ignored by LSH)."""
        return self.bands * self.rows

    def probability(self, similarity: float) -> float:
        """P(a pair with this Jaccard shares at least one band): the S-curve."""
        return s_curve(similarity, self.bands, self.rows)

    def false_candidate_area(self, threshold: float) -> float:
        return _area(self.bands, self.rows, 0.0, threshold)


def s_curve(similarity: float, bands: int, rows: int) -> float:
    return 1.0 - (1.0 - similarity**rows) ** bands


def _area(bands: int, rows: int, low: float, high: float, steps: int = 400) -> float:
    grid = np.linspace(low, high, steps + 1)
    values = 1.0 - (1.0 - grid**rows) ** bands
    return float(np.sum((values[1:] + values[:-1]) / 2.0) * (high - low) / steps)


def choose_layout(threshold: float, num_perm: int, min_recall: float = 0.995) -> BandLayout:
    """The band layout for a threshold: P(threshold) >= min_recall, fewest false candidates.

    Among all (bands, rows) with bands * rows <= num_perm whose S-curve reaches
    min_recall at the threshold, take the smallest area under the curve on
    [0, threshold]; ties go to fewer bands. When no layout reaches min_recall
    (too few permutations), the one with the highest P(threshold).
    """
    best_key, best = None, None
    fallback_key, fallback = None, None
    for rows in range(1, num_perm + 1):
        for bands in range(1, num_perm // rows + 1):
            recall = s_curve(threshold, bands, rows)
            candidate = BandLayout(bands, rows)
            key = (-recall, bands)
            if fallback_key is None or key < fallback_key:
                fallback_key, fallback = key, candidate
            if recall < min_recall:
                continue
            key = (round(_area(bands, rows, 0.0, threshold), 12), bands, -rows)
            if best_key is None or key < best_key:
                best_key, best = key, candidate
    return best or fallback


def s_curve_table(layout: BandLayout, points: Iterable[float]) -> list[tuple[float, float]]:
    return [(round(s, 4), layout.probability(s)) for s in points]


def band_keys(signature: np.ndarray, layout: BandLayout) -> list[bytes]:
    """One 10-byte bucket key per band: the band number and a 64-bit hash of its values."""
    values = signature[: layout.used].astype(np.uint64).reshape(layout.bands, layout.rows)
    mixed = np.full(layout.bands, layout.rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(layout.rows):
            mixed ^= values[:, column]
            mixed *= _BAND_MIX
    hashes = fmix64(mixed).tolist()
    return [struct.pack(">HQ", band, value) for band, value in enumerate(hashes)]


def bucket_edges(members: Iterable, max_bucket: int) -> Iterator[tuple]:
    """Candidate edges (x, y) of one bucket of Nodes (anything with `.id`), x.id > y.id.

    All pairs for at most max_bucket distinct members, else a star to the
    smallest id. `members` may be iterated twice (a Beam GroupByKey result);
    memory stays at max_bucket + 1 members whatever the bucket's size.
    The result depends on the members, never on their order.
    """
    head = list(islice(iter(members), max_bucket + 1))
    if len(head) <= max_bucket:
        unique = {}
        for node in head:
            if node.id not in unique or rank_key(node) < rank_key(unique[node.id]):
                unique[node.id] = node
        ordered = sorted(unique.values(), key=lambda node: node.id, reverse=True)
        yield from combinations(ordered, 2)
        return
    hub = None
    for node in members:
        if hub is None or (node.id, rank_key(node)) < (hub.id, rank_key(hub)):
            hub = node
    for node in members:
        if node.id != hub.id:
            yield node, hub
