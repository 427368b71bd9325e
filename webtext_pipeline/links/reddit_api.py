"""Read submissions from the live Reddit API (through praw) in Pushshift's shape.

What this source can and cannot do, honestly:

- Reddit's listings (top/new/hot) stop at about 1000 items per listing and
  subreddit, whatever `limit` says. The 2005-2017 history WebText was built
  from cannot be rebuilt this way; use the Pushshift-style monthly dumps for
  that (`links/dumps.py`).
- The API is for *fresh* links (the newest or current top posts of chosen
  subreddits) and for *refreshing scores* of submissions already known from
  a dump (`refresh_scores`), since dump scores were frozen at crawl time.

Every function yields plain dicts with the keys of `RawSubmission` (plus
`author`, `num_comments`, `permalink`, `domain`), so the records go through
`LinkFilter.check` and the rest of the links stage exactly like dump lines;
`write_ndjson` saves them as a file the dump reader accepts. Only read-only,
application-only OAuth is used: nothing here posts, votes or logs in a user.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import praw
from praw.exceptions import MissingRequiredAttributeException

from webtext_pipeline import __version__

SITE_ENV = "WEBTEXT_PRAW_SITE"
DEFAULT_SITE = "DEFAULT"
USER_AGENT = f"webtext/{__version__} (+https://github.com/webtext/webtext)"
LISTINGS = ("top", "new", "hot")
INFO_BATCH = 100  # Reddit's /api/info takes at most 100 fullnames per call
_MISSING_RE = re.compile(r"setting '(\w+)' missing")


class RedditAPIError(ValueError):
    """A bad Reddit API setup (missing credentials, unknown praw.ini site); one-line message."""


def make_reddit(**overrides: Any) -> praw.Reddit:
    """A read-only `praw.Reddit`, configured the way praw always is (env, then praw.ini).

    Credentials come from `praw_client_id` / `praw_client_secret` /
    `praw_user_agent` in the environment or from the praw.ini section named by
    `$WEBTEXT_PRAW_SITE` (default `DEFAULT`); `overrides` win over both (tests
    pass `oauth_url`, `reddit_url`, `requestor_kwargs` here). praw's update
    check is off so building a client never touches PyPI.
    """
    site = os.environ.get(SITE_ENV) or DEFAULT_SITE
    settings: dict[str, Any] = {"check_for_updates": False, **overrides}
    try:
        try:
            reddit = praw.Reddit(site, **settings)
        except MissingRequiredAttributeException as exc:
            if _missing_name(exc) != "user_agent" or "user_agent" in settings:
                raise
            # Nothing configured a user agent: name the project, as Reddit's rules ask.
            reddit = praw.Reddit(site, **settings, user_agent=USER_AGENT)
    except MissingRequiredAttributeException as exc:
        name = _missing_name(exc) or "credential"
        raise RedditAPIError(
            f"Reddit API: no {name}; set praw_{name} or add it to the [{site}] section of praw.ini"
        ) from None
    except configparser.NoSectionError:
        raise RedditAPIError(
            f"Reddit API: praw.ini has no [{site}] section; fix ${SITE_ENV} or praw.ini"
        ) from None
    reddit.read_only = True
    return reddit


def _missing_name(exc: MissingRequiredAttributeException) -> str | None:
    match = _MISSING_RE.search(str(exc))
    return match.group(1) if match else None


def listing_submissions(
    reddit: praw.Reddit, subreddits: list[str], listing: str, limit: int | None
) -> Iterator[dict]:
    """Each subreddit's `listing` (top of all time, new or hot), up to `limit` posts each.

    `limit=None` means as many as Reddit serves (about 1000). Subreddits are
    read one after another, each in Reddit's order.
    """
    if listing not in LISTINGS:
        raise ValueError(f"listing {listing!r} must be one of {', '.join(LISTINGS)}")
    for name in subreddits:
        subreddit = reddit.subreddit(_subreddit_name(name))
        if listing == "top":
            posts = subreddit.top(time_filter="all", limit=limit)
        elif listing == "new":
            posts = subreddit.new(limit=limit)
        else:
            posts = subreddit.hot(limit=limit)
        for submission in posts:
            yield submission_record(submission)


def _subreddit_name(name: str) -> str:
    """'r/Python', '/r/Python/' and 'Python' all name the same subreddit."""
    cleaned = name.strip().strip("/")
    if cleaned.lower().startswith("r/"):
        cleaned = cleaned[2:]
    if not cleaned:
        raise ValueError(f"subreddit name {name!r} is empty")
    return cleaned


def refresh_scores(reddit: praw.Reddit, ids: Iterable[str]) -> Iterator[dict]:
    """The current state of known submissions, 100 ids per `/api/info` call.

    `ids` may carry the `t3_` prefix or not, and are streamed (never held).
    Ids Reddit no longer knows simply do not come back, so the output can be
    shorter than the input; removed posts usually *do* come back, with
    `removed_by_category` set, which `LinkFilter` rejects as `removed`.
    """
    fullnames = (_fullname(post_id) for post_id in ids)
    for item in reddit.info(fullnames=fullnames):
        if isinstance(item, praw.models.Submission):
            yield submission_record(item)


def _fullname(post_id: str) -> str:
    post_id = post_id.strip()
    return post_id if post_id.startswith("t3_") else f"t3_{post_id}"


def submission_record(submission: praw.models.Submission) -> dict:
    """A Pushshift-shaped dict from what praw already holds (no lazy fetch).

    Attribute access on a praw object that lacks a field triggers a network
    fetch, so everything is read from `vars(...)` with defaults instead.
    `retrieved_on` is now, which is what Pushshift's field means too.
    """
    data = vars(submission)
    subreddit = data.get("subreddit")
    author = data.get("author")
    created = data.get("created_utc")
    return {
        "id": data.get("id"),
        "url": data.get("url"),
        "created_utc": int(created) if isinstance(created, int | float) else created,
        "score": data.get("score"),
        "ups": data.get("ups"),
        "subreddit": _name_of(subreddit, "display_name"),
        "is_self": data.get("is_self"),
        "over_18": data.get("over_18"),
        "title": data.get("title"),
        "removed_by_category": data.get("removed_by_category"),
        "promoted": data.get("promoted"),
        "retrieved_on": int(time.time()),
        "author": _name_of(author, "name") or "[deleted]",
        "num_comments": data.get("num_comments"),
        "permalink": data.get("permalink"),
        "domain": data.get("domain"),
    }


def _name_of(obj: Any, field: str) -> str | None:
    """A praw Subreddit/Redditor's name without fetching it (or a plain string as is)."""
    if obj is None or isinstance(obj, str):
        return obj
    value = vars(obj).get(field)
    return value if isinstance(value, str) else None


def write_ndjson(records: Iterable[dict], path: str | Path) -> int:
    """Write one JSON object per line, in arrival order; returns the count.

    Written to a temporary name and renamed, so a crash or a bad record never
    leaves a half file that looks complete. Nothing is deduplicated or sorted:
    the links stage does both.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                out.write("\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count
