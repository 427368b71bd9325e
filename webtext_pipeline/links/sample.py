"""The embedded sample: small Pushshift-format months, generated deterministically.

With no `--dumps`, `webtext links` and `webtext build` read these. They carry
the quirks of the real dumps so that every rule of the links stage fires on a
laptop in seconds: created_utc as int, float and string; null scores (with and
without `ups`); promoted ads with no subreddit; `is_self` missing, or false
with a self.reddit.com URL; crossposts; deleted and removed posts; one id in
two files; malformed JSON; a truncated compressed file; posts after the
cutoff; Wikipedia, Reddit-internal, blocklisted and invalid URLs; one article
posted under several URL spellings.

Same seed → byte-identical files (every codec here is deterministic).
"""

from __future__ import annotations

import bz2
import calendar
import json
import lzma
import random
from dataclasses import dataclass
from pathlib import Path

import zstandard

from webtext_pipeline.localfs import write_if_changed

SAMPLE_SEED = 2017
SAMPLE_MONTHS = ("2017-10", "2017-11", "2017-12", "2018-01")
# Month → (file name, posts). 2017-10 is written truncated, as a broken download would be.
SAMPLE_FILES = {
    "2017-10": "RS_2017-10.zst",
    "2017-11": "RS_2017-11.bz2",
    "2017-12": "RS_2017-12.xz",
    "2018-01": "RS_2018-01.zst",
}
POSTS_PER_MONTH = 1500

SITES = (
    "northwind-times.com",
    "harborview-gazette.com",
    "lakeside-ledger.net",
    "techpulse-daily.com",
    "quantum-review.org",
    "greenfield-courier.co.uk",
    "metro-observer.com",
    "pioneer-science.org",
    "civic-tribune.com",
    "openfield-journal.net",
    "blog.riverstone-notes.com",
    "midland-post.co.uk",
    "sierra-chronicle.com",
    "atlas-weekly.org",
    "summit-herald.com",
    "novella-magazine.com",
)
SUBREDDITS = (
    "worldnews",
    "news",
    "science",
    "technology",
    "programming",
    "politics",
    "economics",
    "space",
    "history",
    "books",
    "Futurology",
    "environment",
    "askscience",
    "linux",
)
WORDS = [
    "market",
    "council",
    "river",
    "budget",
    "climate",
    "vote",
    "school",
    "energy",
    "city",
    "study",
    "data",
    "research",
    "court",
    "health",
    "space",
    "launch",
    "policy",
    "report",
    "museum",
    "rail",
    "water",
    "storm",
    "election",
    "trade",
    "bridge",
    "festival",
    "vaccine",
    "satellite",
    "harbor",
    "startup",
    "reform",
    "library",
    "ocean",
    "forest",
]


@dataclass(frozen=True)
class SampleArticle:
    """A page of the sample web: the generator for fetched pages reuses these."""

    site: str
    slug: str

    @property
    def url(self) -> str:
        return f"https://{self.site}/{self.slug}"

    def spellings(self) -> list[str]:
        """Other ways Reddit users posted this page (tracking parameters, www., http)."""
        return [
            f"https://www.{self.site}/{self.slug}?utm_source=reddit&utm_medium=social",
            f"{self.url}/#comments",
            f"http://{self.site}/{self.slug}?fbclid=IwAR0abc",
        ]


def sample_articles(seed: int = SAMPLE_SEED, per_site: int = 40) -> list[SampleArticle]:
    """The articles of the sample web, in a stable order."""
    rng = random.Random(seed)
    articles = []
    for site in SITES:
        for index in range(per_site):
            words = "-".join(rng.sample(WORDS, 3))
            articles.append(SampleArticle(site, f"{2017 - index % 3}/{words}-{index}"))
    return articles


def _month_start(month: str) -> int:
    year, mon = (int(part) for part in month.split("-"))
    return calendar.timegm((year, mon, 1, 0, 0, 0))


class _MonthWriter:
    """Builds one month's lines; each quirk is a method so the list reads as a spec."""

    def __init__(self, month: str, rng: random.Random, articles: list[SampleArticle]) -> None:
        self.month, self.rng, self.articles = month, rng, articles
        self.start = _month_start(month)
        self.lines: list[str] = []
        self.counter = 0

    def new_id(self) -> str:
        self.counter += 1
        return f"{self.month.replace('-', '')[2:]}{self.counter:05d}".lower()

    def post(self, url: str, **overrides: object) -> dict:
        rng = self.rng
        post_id = overrides.pop("id", None) or self.new_id()
        created = self.start + rng.randrange(0, 27 * 86400)
        record = {
            "id": post_id,
            "name": f"t3_{post_id}",
            "author": f"user{rng.randrange(10_000)}",
            "subreddit": rng.choice(SUBREDDITS),
            "subreddit_id": f"t5_{rng.randrange(10**6):x}",
            "created_utc": created,
            "retrieved_on": created + 86400 * 30,
            "score": int(rng.paretovariate(1.2)) - 1,
            "num_comments": rng.randrange(200),
            "title": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 12))).capitalize(),
            "url": url,
            "domain": url.split("/")[2] if "://" in url else "",
            "is_self": False,
            "over_18": False,
            "selftext": "",
            "permalink": f"/r/x/comments/{post_id}/",
            "stickied": False,
        }
        record.update(overrides)
        self.lines.append(json.dumps(record, separators=(",", ":")))
        return record

    def article_url(self) -> str:
        """An article URL, sometimes in another spelling of the same page."""
        article = self.rng.choice(self.articles)
        variant = self.rng.randrange(10)
        return article.spellings()[variant] if variant < 3 else article.url

    def quirks(self) -> None:
        """One or more of every quirk of the real dumps."""
        rng, p = self.rng, self.post
        for _ in range(4):
            p(self.article_url(), created_utc=str(self.start + rng.randrange(86400 * 20)), score=7)
            p(self.article_url(), created_utc=self.start + rng.randrange(86400) + 0.5, score=12)
            p(self.article_url(), score=None, ups=25)
            p(self.article_url(), score=None)
            p(self.article_url(), created_utc="", score=8)
            p("https://ads.example-shop.com/deal", subreddit=None, promoted=True, score=40)
            p("https://www.reddit.com/r/news/comments/abc/x/", score=30, is_self=True)
            rec = p("http://self.reddit.com", score=9)
            rec.pop("is_self", None)
            p(
                "https://www.reddit.com/r/science/comments/q1/x/",
                score=15,
                crosspost_parent="t3_q1",
                crosspost_parent_list=[{"id": "q1"}],
            )
            p("/r/worldnews/comments/q2/y/", score=8, crosspost_parent="t3_q2")
            p("https://i.redd.it/abcd.jpg", score=50)
            p("https://v.redd.it/xyz", score=50)
            p("https://redd.it/5abc", score=5)
            p("[deleted]", score=11, author="[deleted]")
            p(self.article_url(), score=6, removed_by_category="moderator")
            p("https://en.wikipedia.org/wiki/Bridge", score=44)
            p("https://de.m.wikipedia.org/wiki/Br%C3%BCcke", score=13)
            p("http://wikipedia.org/wiki/River", score=9)
            p(self.article_url(), score=20, over_18=True)
            p(self.article_url(), score=20, subreddit="CoonTown")
            p("https://imgur.com/gallery/abc", score=80)
            p("https://www.youtube.com/watch?v=dQw4w9WgXcQ", score=99)
            p(f"https://{rng.choice(SITES)}/files/report.pdf", score=14)
            p("ftp://files.example.com/readme.txt", score=10)
            p("http://192.168.1.10/admin", score=10)
            p("javascript:alert(1)", score=10)
            p("http:///no-host", score=10)
            p("https://x.com/" + "a" * 3000, score=10)
            p("https://münchen-nachrichten.de/artikel/1", score=10)
            self.lines.append('{"id": "broken", "url": "https://oops.com/", "score": 5')
            self.lines.append("[1, 2, 3]")
            self.lines.append('{"id": null, "url": "https://no-id.com/", "score": 4}')

    def bulk(self, count: int) -> None:
        for _ in range(count):
            self.post(self.article_url())

    def late_posts(self, count: int) -> None:
        """Posts whose created_utc is already next month (the real dumps have a few)."""
        next_month = self.start + 32 * 86400
        for _ in range(count):
            created = next_month + self.rng.randrange(86400)
            self.post(self.article_url(), created_utc=created, score=9)


def _compress(path: Path, data: bytes) -> bytes:
    suffix = path.suffix
    if suffix == ".zst":
        return zstandard.ZstdCompressor(level=10).compress(data)
    if suffix == ".bz2":
        return bz2.compress(data, 9)
    if suffix == ".xz":
        return lzma.compress(data, preset=6)
    return data


def write_sample_dumps(out_dir: str | Path, seed: int = SAMPLE_SEED) -> list[Path]:
    """Write the sample months into `out_dir` and return their paths (sorted)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    articles = sample_articles(seed)
    rng = random.Random(seed)
    shared: list[tuple[str, str]] = []
    paths = []
    for month in SAMPLE_MONTHS:
        writer = _MonthWriter(month, random.Random(f"{seed}-{month}"), articles)
        writer.quirks()
        writer.bulk(POSTS_PER_MONTH)
        writer.late_posts(5)
        # The same submissions again in the next month's file, re-scored later.
        for post_id, url in shared:
            writer.post(url, id=post_id, score=33)
        shared = [(writer.new_id(), articles[rng.randrange(len(articles))].url) for _ in range(5)]
        for post_id, url in shared:
            writer.post(url, id=post_id, score=3)
        data = ("\n".join(writer.lines) + "\n").encode("utf-8")
        path = out / SAMPLE_FILES[month]
        blob = _compress(path, data)
        if month == "2017-10":
            blob = blob[: len(blob) * 2 // 3]
        paths.append(write_if_changed(path, blob))
    return sorted(paths)
