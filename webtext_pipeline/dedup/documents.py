"""Per-document work: features from the text, verification of a pair, output and reject rows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from webtext_pipeline.dedup import minhash, shingles
from webtext_pipeline.dedup.model import STAGE, Decision, DedupParams, Node, node_of, rank_key

CLUSTER_COLUMNS = ("dup_cluster", "dup_cluster_size")


@dataclass(slots=True)
class Features:
    """What dedup needs from one text. `signature` is None when the text has no token."""

    exact_key: bytes
    shingles: np.ndarray
    signature: np.ndarray | None


def features(text: str | None, params: DedupParams) -> Features:
    hashed = shingles.token_hashes(text or "")
    key = shingles.exact_key(hashed)
    shingle_set = shingles.shingle_hashes(hashed, params.ngram)
    if shingle_set.size == 0:
        return Features(key, shingle_set, None)
    return Features(key, shingle_set, minhash.signature(shingle_set, params.num_perm, params.seed))


def verify_payload(found: Features, params: DedupParams) -> bytes:
    """What the verification join carries per document: the shingle set or the signature.

    "exact" sends the shingle set cut to 32-bit hashes (4 bytes a shingle, half the
    shuffle of 64-bit ones). Its Jaccard equals the string Jaccard unless two different
    shingles of the pair share 32 bits: about n_a * n_b / 2^32 expected collisions
    (7e-5 for two 3 KB pages, each moving the value by ~1/n).
    """
    if params.verify == "exact":
        return shingles.to_bytes32(found.shingles)
    return minhash.to_bytes(found.signature)


def similarity(payload_a: bytes, payload_b: bytes, params: DedupParams) -> float:
    if params.verify == "exact":
        return shingles.jaccard(shingles.from_bytes32(payload_a), shingles.from_bytes32(payload_b))
    return minhash.estimated_jaccard(minhash.from_bytes(payload_a), minhash.from_bytes(payload_b))


def is_duplicate(value: float, params: DedupParams) -> bool:
    return value >= params.threshold - 1e-12


def doc_node(doc: dict, found: Features) -> Node:
    return node_of(doc, found.exact_key)


def kept_row(doc: dict, decision: Decision | None) -> dict:
    """The document with its cluster columns (a singleton is its own cluster of one)."""
    row = dict(doc)
    if decision is None:
        row["dup_cluster"], row["dup_cluster_size"] = str(doc["id"]), 1
    else:
        row["dup_cluster"], row["dup_cluster_size"] = decision.kept, decision.size
    return row


def reject_row(doc_id: str, decision: Decision) -> dict:
    return {
        "stage": STAGE,
        "key": doc_id,
        "reason": decision.reason,
        "detail": f"kept={decision.kept} cluster_size={decision.size}",
    }


def duplicate_id_row(doc_id: str) -> dict:
    return {
        "stage": STAGE,
        "key": doc_id,
        "reason": "duplicate_id",
        "detail": f"kept={doc_id} (another document with this id)",
    }


def same_id_order(doc: dict) -> tuple:
    """Which of several documents sharing one id is kept: best rank, then smallest text hash."""
    text = doc.get("text") or ""
    key = shingles.exact_key(shingles.token_hashes(text))
    rest = repr(sorted((k, repr(v)) for k, v in doc.items()))
    return rank_key(node_of(doc, key)), text, rest


def route(doc_id: str, docs: Iterable[dict], decisions: Iterable[Decision]):
    """All input documents with one id and its decision (at most one) -> (kept rows, rejects)."""
    docs = list(docs)
    decision = min(decisions, default=None, key=lambda d: (d.kept, d.size, d.reason or ""))
    kept, rejects = [], []
    if len(docs) > 1:
        docs.sort(key=same_id_order)
        rejects.extend(duplicate_id_row(doc_id) for _ in docs[1:])
    if decision is None or decision.reason is None:
        kept.append(kept_row(docs[0], decision))
    else:
        rejects.append(reject_row(doc_id, decision))
    return kept, rejects
