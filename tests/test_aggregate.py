"""Link aggregation: the same row whatever order or grouping the runner uses."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from webtext_pipeline.links.aggregate import (
    LinkAccumulator,
    aggregate,
    karma_sum_rejects,
    pick_duplicate,
)
from webtext_pipeline.links.submissions import Post

KEY = "https://example.com/story"


def post(post_id: str, score: int, created: int, url: str = KEY, sub: str = "news") -> Post:
    return Post(post_id, url, KEY, "example.com", score, sub, created, f"title {post_id}")


POSTS = [
    post("a", 5, 300, "https://www.example.com/story?utm_source=x"),
    post("b", 50, 200, sub="science"),
    post("c", 50, 100, "https://example.com/story/"),
    post("d", 3, 50, "https://example.com/story/"),
]


def test_row_fields():
    row = aggregate(POSTS)
    assert row["url"] == "https://example.com/story/"  # the most-posted original form
    assert (row["score"], row["score_sum"], row["n_posts"]) == (50, 108, 4)
    assert row["post_ids"] == ["a", "b", "c", "d"]
    assert row["subreddits"] == ["news", "science"]
    assert row["created_utc"] == 50
    assert row["title"] == "title c"  # top score; ties go to the earliest post
    assert len(row["id"]) == 16


@settings(max_examples=60, deadline=None)
@given(st.permutations(POSTS), st.integers(min_value=0, max_value=4))
def test_any_order_and_any_split_gives_the_same_row(order, split):
    left, right = LinkAccumulator(), LinkAccumulator()
    for p in order[:split]:
        left.add(p)
    for p in order[split:]:
        right.add(p)
    assert right.merge(left).to_row() == aggregate(POSTS)


def test_duplicate_ids_keep_the_best_copy_and_reject_the_rest():
    old = Post("x", KEY, KEY, "example.com", 3, "news", 10, "t", retrieved_on=100)
    new = Post("x", KEY, KEY, "example.com", 33, "news", 10, "t", retrieved_on=200)
    for copies in ([old, new], [new, old]):
        kept, rejects = pick_duplicate(copies)
        assert kept is new
        assert [(r.key, r.reason) for r in rejects] == [("x", "duplicate_post")]


def test_karma_sum_rejects_every_post_of_a_weak_url():
    row = aggregate([post("a", 1, 1), post("b", 1, 2)])
    assert [(r.key, r.reason) for r in karma_sum_rejects(row, 3)] == [
        ("a", "low_score_sum"), ("b", "low_score_sum")]
    assert karma_sum_rejects(row, 2) == []
