"""The corpus rows: a deduplicated document → one DOCS_SCHEMA row, with its split.

Library layer (no Beam): beam_jobs.shards_job maps these over the dedup output
and writes OUT/docs/shard-NNNNN-of-NNNNN.parquet.

The split comes from a hash of the document id alone, so a document keeps its
split across runs, across corpus sizes and across shard counts. The default
held-out fraction is nanoGPT's for OpenWebText (0.05 %, about 4,000 of 8M
documents); the embedded sample uses a larger one (SAMPLE_VAL_FRACTION) so its
val.bin is not empty.
"""

from __future__ import annotations

import math

from webtext_pipeline.records import DOCS_SCHEMA, fraction_from_hash

DEFAULT_SHARD_BYTES = 256 << 20
DEFAULT_VAL_FRACTION = 0.0005
SAMPLE_VAL_FRACTION = 0.1
# Rows per Parquet row group: ~40 MB of text at WebText's ~4 KB mean document, so a
# scan reads few, large, contiguous column chunks and a filter can still skip groups.
DOCS_ROW_GROUP_ROWS = 10_000

# Columns renamed on the way into the corpus (the rest keep their names).
RENAMED = {"reddit_score": "score", "reddit_posts": "n_posts"}


def split_of(doc_id: str, val_fraction: float) -> str:
    """'val' for a stable val_fraction of ids, else 'train'."""
    return "val" if fraction_from_hash(f"split:{doc_id}") < val_fraction else "train"


def doc_row(row: dict, val_fraction: float) -> dict:
    """A dedup output row (CLEAN_SCHEMA + dup_cluster, dup_cluster_size) → a DOCS_SCHEMA row."""
    out = {name: row[RENAMED.get(name, name)] for name in DOCS_SCHEMA.names if name != "split"}
    out["split"] = split_of(out["id"], val_fraction)
    return out


def shard_count(input_bytes: int, target_bytes: int) -> int:
    """Shards for a corpus whose zstd Parquet input is `input_bytes` (the output compresses
    the same columns the same way, so sizes carry over)."""
    if target_bytes <= 0:
        raise ValueError(f"shard size {target_bytes}: must be more than 0")
    return max(1, math.ceil(input_bytes / target_bytes))


def check_val_fraction(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"--val-fraction {value}: must be at least 0 and below 1")
    return value
