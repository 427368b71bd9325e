"""Quality at small size: recall and precision on pairs with exact Jaccard >= the threshold.

The shared evaluation generator (../shared/eval/make_neardup_eval.py, real prose
when python3.11-doc and fortunes are installed) is used when it is there; a
self-contained labelled set always runs. Full-size figures: benchmarks/bench_dedup.py.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from webtext_pipeline.dedup import DedupParams
from webtext_pipeline.dedup.local import dedup_local
from webtext_pipeline.dedup.shingles import shingle_strings

GENERATOR = Path(__file__).resolve().parents[2] / "shared" / "eval" / "make_neardup_eval.py"


def scores(result, truth: dict[tuple[str, str], float], threshold: float) -> tuple[float, float]:
    true = {pair for pair, value in truth.items() if value >= threshold}
    found = result.duplicate_pairs()
    hits = len(found & true)
    return hits / max(1, len(found)), hits / max(1, len(true))


@pytest.mark.skipif(not GENERATOR.exists(), reason="shared eval generator not present")
@pytest.mark.parametrize("seed", [3, 4])
def test_shared_eval_set_meets_the_targets(tmp_path, seed):
    subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(tmp_path), "--seed", str(seed),
         "--n-base", "250", "--n-distinct", "250"],
        check=True, capture_output=True,
    )
    docs = [json.loads(line) for line in (tmp_path / "docs.jsonl").open()]
    docs = [{"id": str(d["id"]), "text": d["text"]} for d in docs]
    truth = {}
    with (tmp_path / "pairs.tsv").open() as handle:
        next(handle)
        for line in handle:
            a, b, value, _relation = line.split("\t")
            truth[(a, b) if a > b else (b, a)] = float(value)
    precision, recall = scores(dedup_local(docs, DedupParams()), truth, 0.8)
    assert sum(v >= 0.8 for v in truth.values()) > 100
    assert precision >= 0.99 and recall >= 0.97, (precision, recall)


def test_self_contained_labelled_set_meets_the_targets():
    rng = random.Random(12)
    vocab = [f"v{i}" for i in range(5000)]
    docs, groups = [], []
    for group in range(120):
        words = [rng.choice(vocab) for _ in range(rng.randint(80, 900))]
        members = [len(docs)]
        docs.append({"id": f"g{group:03d}-0", "text": " ".join(words)})
        for variant in range(1, rng.randint(2, 5)):
            edited = list(words)
            for _ in range(int(len(words) * rng.choice([0.002, 0.01, 0.02, 0.03, 0.05]))):
                edited[rng.randrange(len(edited))] = rng.choice(vocab)
            if rng.random() < 0.3:
                edited = edited[: int(len(edited) * rng.uniform(0.75, 1.0))]
            members.append(len(docs))
            docs.append({"id": f"g{group:03d}-{variant}", "text": " ".join(edited)})
        groups.append(members)
    truth = {}
    sets = [shingle_strings(d["text"]) for d in docs]
    for members in groups:  # word salad: documents of different groups share nothing
        for i in members:
            for j in members:
                a, b = docs[i]["id"], docs[j]["id"]
                if a > b:
                    truth[(a, b)] = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
    precision, recall = scores(dedup_local(docs, DedupParams()), truth, 0.8)
    assert sum(v >= 0.8 for v in truth.values()) > 150
    assert sum(0.7 < v < 0.8 for v in truth.values()) > 0  # near misses exist and stay out
    assert precision >= 0.99 and recall >= 0.97, (precision, recall)
