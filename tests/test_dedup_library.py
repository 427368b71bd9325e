"""The dedup library: shingles, datasketch-equal signatures, band layout, buckets, clusters."""

from __future__ import annotations

import pickle
import random
import re

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from webtext_pipeline.dedup import DedupParams, Node, choose_layout, rank_key, s_curve
from webtext_pipeline.dedup import minhash as mh
from webtext_pipeline.dedup import shingles as sh
from webtext_pipeline.dedup.clusters import (
    UnionFind,
    cluster_decisions,
    components,
    exact_edges,
    representative,
)
from webtext_pipeline.dedup.lsh import BandLayout, band_keys, bucket_edges
from webtext_pipeline.dedup.model import node_of

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
         "rho sigma tau upsilon phi chi psi omega").split()


def prose(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


# ----------------------------------------------------------------------------- shingles

TEXTS = [
    "",
    "   ...!!!   ",
    "one",
    "Hello, World! hello world",
    "naïve café — déjà vu, Ünïcödé ΣΊΣΥΦΟΣ straße İstanbul ½ ² ٣ 漢字 かな",
    "snake_case and CamelCase, 3.14 and 2,718; e-mail: a@b.c",
    "tabs\tnew\nlines\r\nand\u00a0nbsp\u2009thin\u200bzero-width",
    "lone \ud800 surrogate and emoji 😀 between words",
]


@pytest.mark.parametrize("text", TEXTS)
def test_token_hashes_match_the_regex_tokens_of_the_eval_generator(text):
    words = re.findall(r"\w+", text.lower())
    assert sh.tokens(text) == words
    assert sh.token_hashes(text).tolist() == [sh.token_hash(w) for w in words]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_token_hashes_match_the_regex_on_any_unicode(text):
    words = re.findall(r"\w+", text.lower())
    assert sh.token_hashes(text).tolist() == [sh.token_hash(w) for w in words]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(WORDS + ["Ünï", "x_1", "42"]), max_size=40), st.integers(1, 7))
def test_shingle_set_is_the_string_shingle_set_hashed(words, ngram):
    text = " , ".join(words)
    strings = sh.shingle_strings(text, ngram)
    expected = sorted({sh.shingle_hash([sh.token_hash(w) for w in s.split(" ")]) for s in strings})
    assert sh.shingle_hashes(sh.token_hashes(text), ngram).tolist() == expected


def test_normalisation_case_punctuation_and_whitespace_do_not_matter():
    a = "The quick brown fox, jumps over the lazy dog!"
    b = "the   QUICK\nbrown -- fox jumps (over) the lazy DOG"
    ka, kb = (sh.exact_key(sh.token_hashes(t)) for t in (a, b))
    assert ka == kb
    assert ka != sh.exact_key(sh.token_hashes(a + " again"))


def test_exact_jaccard_equals_the_jaccard_of_string_shingles():
    rng = random.Random(3)
    base = prose(rng, 300)
    words = base.split()
    variant = " ".join(words[:150] + [rng.choice(WORDS) for _ in range(20)] + words[170:])
    a, b = (sh.shingle_hashes(sh.token_hashes(t)) for t in (base, variant))
    sa, sb = sh.shingle_strings(base), sh.shingle_strings(variant)
    assert sh.jaccard(a, b) == pytest.approx(len(sa & sb) / len(sa | sb), abs=1e-12)
    assert sh.jaccard(a, a) == 1.0 and sh.jaccard(a, sh.EMPTY) == 0.0


def test_a_page_longer_than_the_power_table_hashes_like_a_short_one():
    text = "word " * 50_000 + "tail end"
    hashed = sh.token_hashes(text)
    assert hashed.size == 50_002 and hashed[-1] == sh.token_hash("end")


# ----------------------------------------------------------------------------- signatures


def datasketch_minhash(text: str, num_perm: int, seed: int = 1, ngram: int = 5) -> MinHash:
    """datasketch's own MinHash over the same shingles (as token tuples), our hash as hashfunc."""
    words = sh.tokens(text)
    width = min(ngram, len(words))
    grams = [tuple(words[i : i + width]) for i in range(len(words) - width + 1)]

    def hashfunc(gram: tuple[str, ...]) -> int:
        return mh.low32(sh.shingle_hash([sh.token_hash(w) for w in gram]))

    m = MinHash(num_perm=num_perm, seed=seed, scheme=mh.SCHEME, hashfunc=hashfunc)
    m.update_batch(grams)
    return m


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7), (256, 1)])
def test_signatures_equal_datasketch_value_for_value(num_perm, seed):
    rng = random.Random(num_perm)
    for text in [prose(rng, n) for n in (1, 4, 5, 6, 80, 700)] + TEXTS[3:]:
        ours = mh.signature(sh.shingle_hashes(sh.token_hashes(text)), num_perm, seed)
        theirs = datasketch_minhash(text, num_perm, seed)
        assert ours.dtype == np.uint32 and np.array_equal(ours, theirs.hashvalues)
        lean = LeanMinHash(seed=seed, hashvalues=ours, scheme=mh.SCHEME)
        assert lean.jaccard(LeanMinHash(theirs)) == 1.0


def test_signature_of_a_huge_set_is_chunked_and_still_equal():
    rng = np.random.default_rng(5)
    shingle_set = np.unique(rng.integers(0, 2**63, size=3 * mh.CHUNK + 17, dtype=np.uint64))
    a, b = mh.permutations(128, 1)
    with np.errstate(over="ignore"):
        mixed = mh.fmix32(shingle_set.astype(np.uint32))
        expected = (np.multiply.outer(a, mixed) + b[:, None]).min(axis=1)
    assert np.array_equal(mh.signature(shingle_set, 128, 1), expected)


def test_estimated_jaccard_tracks_the_exact_one():
    rng = random.Random(11)
    words = prose(rng, 2000).split()
    edited = words[:1700] + [rng.choice(WORDS) for _ in range(300)]
    a, b = (sh.shingle_hashes(sh.token_hashes(" ".join(w))) for w in (words, edited))
    exact = sh.jaccard(a, b)
    estimate = mh.estimated_jaccard(mh.signature(a, 512), mh.signature(b, 512))
    assert abs(exact - estimate) < 0.06


# ----------------------------------------------------------------------------- band layout


def test_default_layout_catches_pairs_at_the_threshold():
    layout = DedupParams().layout
    assert (layout.bands, layout.rows) == (18, 6)
    assert layout.probability(0.8) >= 0.995
    assert layout.probability(0.3) < 0.02  # few unrelated candidates to verify
    datasketch_default = BandLayout(9, 13)  # MinHashLSH(threshold=0.8, num_perm=128)
    assert datasketch_default.probability(0.8) == pytest.approx(0.40, abs=0.01)


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_every_chosen_layout_fits_and_reaches_the_recall_floor(threshold, num_perm):
    layout = choose_layout(threshold, num_perm)
    assert layout.used <= num_perm
    assert s_curve(threshold, layout.bands, layout.rows) >= 0.995
    # the S-curve is monotone: anything more similar is caught even more often
    grid = [threshold + (1 - threshold) * k / 10 for k in range(11)]
    values = [layout.probability(s) for s in grid]
    assert values == sorted(values)


def test_too_few_permutations_fall_back_to_the_best_recall():
    layout = choose_layout(0.5, 4)  # at best 1 - 0.5**4 = 0.94
    assert layout.used <= 4 and layout == BandLayout(4, 1)


def test_params_reject_bad_values_with_one_line():
    for bad in (
        dict(threshold=0), dict(threshold=1.5), dict(num_perm=0), dict(ngram=0),
        dict(bands=4), dict(bands=30, rows=5), dict(verify="fuzzy"), dict(max_bucket=1),
    ):
        with pytest.raises(ValueError) as info:
            DedupParams(**bad)
        assert "\n" not in str(info.value)
    assert DedupParams(bands=16, rows=8).layout == BandLayout(16, 8)


def test_band_keys_agree_exactly_when_the_band_agrees():
    layout = BandLayout(4, 3)
    sig = np.arange(20, dtype=np.uint32)
    other = sig.copy()
    other[4] += 1  # band 1 differs
    keys, other_keys = band_keys(sig, layout), band_keys(other, layout)
    assert len(keys) == 4 and len(set(keys)) == 4
    assert [a == b for a, b in zip(keys, other_keys, strict=True)] == [True, False, True, True]


# ----------------------------------------------------------------------------- buckets


def node(i: int | str, score=None, created=None, key=b"k") -> Node:
    return Node(str(i) if isinstance(i, str) else f"d{i:06d}", score, created, key)


class CountingIterable:
    """A re-iterable like a GroupByKey result that counts how often it is walked."""

    def __init__(self, items) -> None:
        self.items, self.walks = list(items), 0

    def __iter__(self):
        self.walks += 1
        return iter(self.items)


def test_small_bucket_makes_all_pairs_oriented_larger_id_first():
    members = [node(i) for i in (3, 1, 2)]
    edges = [(x.id, y.id) for x, y in bucket_edges(members, max_bucket=8)]
    assert sorted(edges) == [("d000002", "d000001"), ("d000003", "d000001"),
                             ("d000003", "d000002")]


def test_huge_bucket_is_a_star_to_its_smallest_id_not_quadratic():
    members = CountingIterable(node(i) for i in random.Random(1).sample(range(100_000), 20_000))
    edges = list(bucket_edges(members, max_bucket=64))
    hub = min(members.items, key=lambda n: n.id)
    assert len(edges) == 19_999 and all(y == hub for _x, y in edges)
    assert all(x.id > y.id for x, y in edges) and members.walks == 3


def test_bucket_edges_do_not_depend_on_member_order():
    for size, limit in ((10, 64), (500, 64)):
        members = [node(i) for i in range(size)]
        shuffled = members[:]
        random.Random(size).shuffle(shuffled)
        assert sorted(bucket_edges(members, limit)) == sorted(bucket_edges(shuffled, limit))


# ----------------------------------------------------------------------------- clusters


def test_union_find_labels_components_by_smallest_id():
    labels = components([("b", "a"), ("c", "b"), ("x", "y"), ("d", "d")])
    assert labels == {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x", "d": "d"}


def test_union_find_partials_merge_and_pickle_to_the_same_components():
    rng = random.Random(2)
    edges = [(f"n{rng.randrange(3000)}", f"n{rng.randrange(3000)}") for _ in range(2500)]
    whole = components(edges)
    parts = [UnionFind() for _ in range(4)]
    for i, (a, b) in enumerate(edges):
        parts[i % 4].union(a, b)
    merged = pickle.loads(pickle.dumps(parts[0]))
    for part in parts[1:]:
        merged.merge(pickle.loads(pickle.dumps(part)))
    assert dict(merged.labels()) == whole


def test_long_chain_is_one_component():
    edges = [(f"n{i:05d}", f"n{i + 1:05d}") for i in range(20_000)]
    random.Random(4).shuffle(edges)
    labels = components(edges)
    assert set(labels.values()) == {"n00000"} and len(labels) == 20_001


def test_survivor_rule_score_then_earliest_post_then_smallest_id():
    nodes = [
        node("e", score=10, created=500),
        node("d", score=10, created=100),
        node("c", score=10, created=100),
        node("b", score=None, created=1),
        node("a", score=3, created=None),
    ]
    assert [n.id for n in sorted(nodes, key=rank_key)] == ["c", "d", "e", "a", "b"]
    unknown = [node("z"), node("y"), node("x", created=5)]
    assert min(unknown, key=rank_key).id == "x"
    assert min([node("z"), node("y")], key=rank_key).id == "y"


def test_node_of_reads_score_columns_in_order_and_ignores_junk():
    assert node_of({"id": 7, "reddit_score": 5, "score": 9}, b"").score == 5
    assert node_of({"id": 7, "reddit_score": None, "score": 9}, b"").score == 9
    assert node_of({"id": 7, "score": "many"}, b"").score is None
    assert node_of({"id": 7, "score": float("nan")}, b"").score is None
    assert node_of({"id": 7, "score": True}, b"").id == "7"


def test_cluster_decisions_name_the_survivor_and_tell_exact_from_near():
    survivor = node("b", score=9, key=b"same")
    copy = node("a", score=1, key=b"same")
    near = node("c", score=5, key=b"other")
    decisions = dict(cluster_decisions(CountingIterable([copy, near, survivor])))
    assert decisions["b"].reason is None and decisions["b"].size == 3
    assert decisions["a"] == ("b", 3, "exact_duplicate")
    assert decisions["c"] == ("b", 3, "near_duplicate")


def test_exact_group_representative_is_the_smallest_id():
    members = [(node("q"), b"s1"), (node("b"), b"s2"), (node("k"), b"s3")]
    rep, sig, size = representative(members)
    assert (rep.id, sig, size) == ("b", b"s2", 3)
    assert sorted(x.id for x, _ in exact_edges(members, rep)) == ["k", "q"]
