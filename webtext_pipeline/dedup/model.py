"""The dedup stage's parameters, reason vocabulary and the small records it passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from webtext_pipeline.records import DEDUP_REASONS

STAGE = "dedup"
__all__ = ["DEDUP_REASONS", "STAGE"]

# Columns read for the survivor rule, in order of preference; absent or null = unknown.
SCORE_COLUMNS = ("reddit_score", "score")
TIME_COLUMNS = ("created_utc",)

VERIFY_MODES = ("exact", "minhash")


class Node(NamedTuple):
    """A document as the clustering steps see it: no text, just what ranks and groups it."""

    id: str
    score: int | float | None
    created: object  # int seconds (or a datetime), None when unknown
    exact_key: bytes
    numeric_id: int | None = None  # the id itself when the id column holds integers


class Decision(NamedTuple):
    """What happens to one document that has a duplicate: kept, or removed for `reason`."""

    kept: str  # the id of the cluster's survivor (also the kept document's dup_cluster)
    size: int  # documents in the cluster, the survivor included
    reason: str | None  # None: this document is the survivor


def rank_key(node: Node) -> tuple:
    """The survivor rule as a sort key, best first: highest score, earliest post, smallest id.

    An unknown score ranks below every known one, an unknown post time after
    every known one. Integer ids compare as numbers (and before string ids);
    the exact key only breaks ties between copies of one id.
    """
    score = (0, -node.score) if node.score is not None else (1, 0)
    created = (0, node.created) if node.created is not None else (1, 0)
    ident = (0, node.numeric_id, "") if node.numeric_id is not None else (1, 0, node.id)
    return (score, created, ident, node.exact_key)


def node_of(doc: dict, exact: bytes) -> Node:
    """The Node of a document dict: id, first score column present, post time."""
    raw = doc["id"]
    numeric = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    score, created = _number(doc, SCORE_COLUMNS), _first(doc, TIME_COLUMNS)
    return Node(str(raw), score, created, exact, numeric)


def _first(doc: dict, columns: tuple[str, ...]):
    for column in columns:
        value = doc.get(column)
        if value is not None:
            return value
    return None


def _number(doc: dict, columns: tuple[str, ...]):
    value = _first(doc, columns)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if value != value else value  # NaN is unknown


@dataclass(frozen=True)
class DedupParams:
    """Everything that decides which documents survive.

    threshold   a pair is a near duplicate when its word n-gram Jaccard is >= this
    num_perm    MinHash permutations (signature length)
    ngram       words per shingle
    seed        datasketch permutation seed
    bands/rows  LSH layout; None: chosen from threshold and num_perm (see lsh.choose_layout)
    min_recall  the layout chooser's floor on P(candidate | Jaccard = threshold)
    max_bucket  buckets up to this size make all pairs; larger ones a star to their
                smallest id (linear, never quadratic)
    verify      "exact": Jaccard on the shingle-hash sets (32-bit, see
                documents.verify_payload; default);
                "minhash": the signature estimate (no shingle sets shuffled, less exact)
    """

    threshold: float = 0.8
    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    bands: int | None = None
    rows: int | None = None
    min_recall: float = 0.995
    max_bucket: int = 64
    verify: str = "exact"
    _layout: tuple[int, int] = field(default=(0, 0), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from webtext_pipeline.dedup.lsh import choose_layout

        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"--threshold {self.threshold}: must be in (0, 1]")
        if not 1 <= self.num_perm <= 1024:
            raise ValueError(f"--num-perm {self.num_perm}: must be 1..1024")
        if not 1 <= self.ngram <= 64:
            raise ValueError(f"--ngram {self.ngram}: must be 1..64")
        if self.verify not in VERIFY_MODES:
            raise ValueError(f"verify {self.verify!r}: must be one of {', '.join(VERIFY_MODES)}")
        if self.max_bucket < 2:
            raise ValueError(f"max_bucket {self.max_bucket}: must be 2 or more")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None:
            if self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm:
                raise ValueError(
                    f"bands {self.bands} x rows {self.rows} must be >= 1 and fit in "
                    f"--num-perm {self.num_perm}"
                )
            layout = (self.bands, self.rows)
        else:
            chosen = choose_layout(self.threshold, self.num_perm, self.min_recall)
            layout = (chosen.bands, chosen.rows)
        object.__setattr__(self, "_layout", layout)

    @property
    def layout(self):
        from webtext_pipeline.dedup.lsh import BandLayout

        return BandLayout(*self._layout)

    def fingerprint(self) -> dict:
        """What a rerun must match to reuse the stage's output."""
        bands, rows = self._layout
        return {
            "threshold": self.threshold, "num_perm": self.num_perm, "ngram": self.ngram,
            "seed": self.seed, "bands": bands, "rows": rows, "max_bucket": self.max_bucket,
            "verify": self.verify,
        }
