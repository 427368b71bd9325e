"""Fold all posts of one normalised URL into one link row, in any order.

The accumulator is associative and commutative, and every tie is broken by a
total order on plain values, so a runner may combine partial results however
it likes and the row comes out the same: this is what lets Beam run it as a
combiner (partial sums on each worker, no GroupByKey-then-list).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from webtext_pipeline.records import Reject, stable_id

from .submissions import STAGE, Post


@dataclass
class LinkAccumulator:
    """Partial aggregate of one URL key's posts."""

    forms: Counter = field(default_factory=Counter)
    score: int | None = None
    score_sum: int = 0
    post_ids: set[str] = field(default_factory=set)
    subreddits: set[str] = field(default_factory=set)
    created_utc: int | None = None
    top: tuple[int, int, str] | None = None  # (-score, created_utc, post_id) of the title post
    title: str = ""
    domain: str = ""
    url_key: str = ""

    def add(self, post: Post) -> LinkAccumulator:
        self.forms[post.url] += 1
        self.score = post.score if self.score is None else max(self.score, post.score)
        self.score_sum += post.score
        self.post_ids.add(post.post_id)
        self.subreddits.add(post.subreddit)
        if self.created_utc is None or post.created_utc < self.created_utc:
            self.created_utc = post.created_utc
        rank = (-post.score, post.created_utc, post.post_id)
        if self.top is None or rank < self.top:
            self.top, self.title = rank, post.title
        self.domain, self.url_key = post.domain, post.url_key
        return self

    def merge(self, other: LinkAccumulator) -> LinkAccumulator:
        if other.score is None:
            return self
        self.forms.update(other.forms)
        self.score = other.score if self.score is None else max(self.score, other.score)
        self.score_sum += other.score_sum
        self.post_ids |= other.post_ids
        self.subreddits |= other.subreddits
        if self.created_utc is None or other.created_utc < self.created_utc:
            self.created_utc = other.created_utc
        if self.top is None or other.top < self.top:
            self.top, self.title = other.top, other.title
        self.domain, self.url_key = other.domain, other.url_key
        return self

    def to_row(self) -> dict:
        """The link row (see records.LINKS_SCHEMA)."""
        url = min(self.forms.items(), key=lambda item: (-item[1], item[0]))[0]
        return {
            "url": url,
            "url_key": self.url_key,
            "id": stable_id(self.url_key),
            "domain": self.domain,
            "score": self.score,
            "score_sum": self.score_sum,
            "n_posts": len(self.post_ids),
            "post_ids": sorted(self.post_ids),
            "subreddits": sorted(self.subreddits),
            "created_utc": self.created_utc,
            "title": self.title,
        }


def aggregate(posts: list[Post]) -> dict:
    """Aggregate posts of one URL key directly (used outside Beam and in tests)."""
    acc = LinkAccumulator()
    for post in posts:
        acc.add(post)
    return acc.to_row()


def pick_duplicate(posts: list[Post]) -> tuple[Post, list[Reject]]:
    """Of several copies of one submission id, keep the newest-scored; reject the rest.

    Order: highest score, then latest retrieved_on, then the remaining fields,
    so the choice never depends on which file was read first.
    """
    ordered = sorted(
        posts,
        key=lambda p: (-p.score, -p.retrieved_on, p.url, p.created_utc, p.title, p.subreddit),
    )
    kept = ordered[0]
    detail = f"kept the copy with score {kept.score}"
    return kept, [Reject(STAGE, p.post_id, "duplicate_post", detail) for p in ordered[1:]]


def karma_sum_rejects(row: dict, min_karma: int) -> list[Reject]:
    """--karma sum: a URL whose summed karma is too low rejects each of its posts."""
    if row["score_sum"] >= min_karma:
        return []
    detail = f"url {row['url_key'][:200]} summed {row['score_sum']}"
    return [Reject(STAGE, post_id, "low_score_sum", detail) for post_id in row["post_ids"]]
