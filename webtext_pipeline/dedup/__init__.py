"""Stage five: exact and MinHash near-duplicate removal (library layer, no Beam).

    text ─► token hashes ─► exact key ───────────────► exact groups ─┐
                  └──────► shingle set ─► signature ─► band keys ─► buckets ─► candidate edges
                                 └─────────────────────────────────► verify (Jaccard >= t) ─┤
                                                          union-find ◄────────────────────────┘
                                                              └─► clusters ─► survivor rule

Modules: `shingles` (normalisation, 64-bit shingle hashes, exact key, exact
Jaccard), `minhash` (datasketch-equal signatures, vectorised), `lsh` (band
layout from the threshold, S-curve, band keys, bucket -> edges), `clusters`
(exact groups, union-find, survivor rule), `documents` (per-document features
and output/reject rows), `local` (the whole stage in one process, the reference
for the Beam job), `model` (parameters, reasons, records). The Beam
composition is beam_jobs.dedup_job; the design and figures are in docs/dedup.md.
"""

from webtext_pipeline.dedup.lsh import BandLayout, choose_layout, s_curve
from webtext_pipeline.dedup.model import (
    DEDUP_REASONS,
    STAGE,
    Decision,
    DedupParams,
    Node,
    rank_key,
)

__all__ = [
    "DEDUP_REASONS",
    "STAGE",
    "BandLayout",
    "Decision",
    "DedupParams",
    "Node",
    "choose_layout",
    "rank_key",
    "s_curve",
]
