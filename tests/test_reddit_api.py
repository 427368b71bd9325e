"""The live-Reddit source against a fake Reddit API: a real HTTP server on 127.0.0.1.

praw and prawcore run unmodified: they get an OAuth token over HTTP, page
through listings with `after`, and batch `/api/info` calls, exactly as they
would against reddit.com; only `oauth_url` / `reddit_url` point here.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import msgspec
import praw.config
import pytest

from webtext_pipeline.links import reddit_api
from webtext_pipeline.links.reddit_api import (
    USER_AGENT,
    RedditAPIError,
    listing_submissions,
    make_reddit,
    refresh_scores,
    write_ndjson,
)
from webtext_pipeline.links.submissions import LinkFilter, LinkRules, Post, RawSubmission
from webtext_pipeline.records import Reject

N_POSTS = 250
BASE_CREATED = 1_483_228_800  # 2017-01-01, before the default cutoff


def _post(i: int, subreddit: str) -> dict:
    """One submission in Reddit's JSON shape; every 10th is a self post."""
    post_id = f"{subreddit[:2].lower()}{i:04d}"
    permalink = f"/r/{subreddit}/comments/{post_id}/post_{i}/"
    is_self = i % 10 == 9
    return {
        "id": post_id,
        "name": f"t3_{post_id}",
        "title": f"Post {i}",
        "url": f"https://www.reddit.com{permalink}"
        if is_self
        else f"https://site{i}.example.com/a/{i}",
        "domain": f"self.{subreddit}" if is_self else f"site{i}.example.com",
        "created_utc": float(BASE_CREATED + 3600 * ((i * 37) % N_POSTS)),
        "score": 1000 - 3 * i,
        "ups": 1000 - 3 * i,
        "subreddit": subreddit,
        "subreddit_id": "t5_2qh0y",
        "is_self": is_self,
        "over_18": False,
        "author": "[deleted]" if i == 3 else f"user{i}",
        "num_comments": i,
        "permalink": permalink,
        "removed_by_category": None,
        "selftext": "",
        "stickied": False,
    }


class FakeReddit:
    """The server's state: posts by subreddit, current scores, and a log of requests."""

    def __init__(self) -> None:
        self.subs = {name: [_post(i, name) for i in range(N_POSTS)] for name in ("Python", "news")}
        self.by_fullname = {p["name"]: p for posts in self.subs.values() for p in posts}
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.token_requests: list[dict] = []

    def ordered(self, sub: str, listing: str) -> list[dict]:
        posts = self.subs[sub]
        if listing == "top":
            return sorted(posts, key=lambda p: -p["score"])
        if listing == "new":
            return sorted(posts, key=lambda p: (-p["created_utc"], p["id"]))
        return list(reversed(posts))  # "hot": some other fixed order


def _listing(children: list[dict], after: str | None) -> dict:
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "before": None,
            "dist": len(children),
            "children": [{"kind": "t3", "data": c} for c in children],
        },
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeReddit  # set on the per-server subclass

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if self.headers.get("Connection", "").lower() == "close":
            # Say so, as real servers do, or the client pools a socket that is closing.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        path = urlsplit(self.path).path.rstrip("/")
        self.fake.requests.append(("POST", path, form))
        if path != "/api/v1/access_token":
            self._send(404, {"error": 404})
            return
        user, _, secret = (
            base64.b64decode(self.headers.get("Authorization", "Basic ").split()[-1])
            .decode()
            .partition(":")
        )
        self.fake.token_requests.append(
            {"user": user, "secret": secret, "form": form, "ua": self.headers["User-Agent"]}
        )
        self._send(
            200, {"access_token": "x", "token_type": "bearer", "expires_in": 3600, "scope": "*"}
        )

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.fake.requests.append(("GET", path, query))
        if self.headers.get("Authorization") != "bearer x":
            self._send(401, {"message": "Unauthorized", "error": 401})
            return
        segments = path.strip("/").split("/")
        if path == "/api/info":
            wanted = query.get("id", "").split(",")
            found = [self.fake.by_fullname[n] for n in wanted if n in self.fake.by_fullname]
            self._send(200, _listing(found, None))
        elif len(segments) == 3 and segments[0] == "r" and segments[2] in ("top", "new", "hot"):
            posts = self.fake.ordered(segments[1], segments[2])
            names = [p["name"] for p in posts]
            start = names.index(query["after"]) + 1 if query.get("after") else 0
            page = posts[start : start + min(int(query.get("limit", 25)), 100)]
            more = start + len(page) < len(posts)
            self._send(200, _listing(page, page[-1]["name"] if more and page else None))
        else:
            self._send(404, {"message": "Not Found", "error": 404})


@pytest.fixture(scope="module")
def server():
    """A fake Reddit on 127.0.0.1 (port chosen by the OS), shared by this module's tests."""
    handler = type("BoundHandler", (Handler,), {"fake": FakeReddit()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd, handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def isolated_praw(tmp_path, monkeypatch, caplog):
    """No praw.ini and no praw_* variables from the machine running the tests.

    Also fails a test in which prawcore had to retry: against this server every
    request must succeed the first time (a retry hides a bug and sleeps).
    """
    for name in (
        "praw_client_id",
        "praw_client_secret",
        "praw_user_agent",
        "praw_site",
        "praw_username",
        "praw_password",
        "praw_refresh_token",
        "APPDATA",
        reddit_api.SITE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(praw.config.Config, "CONFIG", None)  # reload praw.ini from here
    caplog.set_level(logging.WARNING, logger="prawcore")
    yield
    assert not [r.getMessage() for r in caplog.get_records("call") if r.name.startswith("prawcore")]


@pytest.fixture
def fake(server):
    """Fresh server state per test."""
    _, handler = server
    handler.fake = FakeReddit()
    return handler.fake


@pytest.fixture
def reddit(server, fake):
    httpd, _ = server
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    return make_reddit(
        client_id="test-id",
        client_secret="test-secret",
        oauth_url=base,
        reddit_url=base,
        short_url=base,
    )


def _gets(fake: FakeReddit, path: str) -> list[dict]:
    return [q for method, p, q in fake.requests if method == "GET" and p == path]


def test_top_listing_pages_through_everything_in_order(reddit, fake):
    records = list(listing_submissions(reddit, ["Python"], "top", None))
    expected = fake.ordered("Python", "top")
    assert [r["id"] for r in records] == [p["id"] for p in expected]
    assert [r["url"] for r in records] == [p["url"] for p in expected]
    assert [r["score"] for r in records] == [p["score"] for p in expected]
    # 250 posts at 100 a page: three listing calls, with `after` and t=all, and nothing else
    pages = _gets(fake, "/r/Python/top")
    assert len(pages) == 3
    assert [q.get("after") for q in pages] == [None, expected[99]["name"], expected[199]["name"]]
    assert all(q["t"] == "all" for q in pages)
    assert [p for m, p, _ in fake.requests] == ["/api/v1/access_token"] + ["/r/Python/top"] * 3


def test_records_have_the_pushshift_shape_without_lazy_fetches(reddit, fake):
    record = next(listing_submissions(reddit, ["r/Python"], "hot", 1))
    source = fake.ordered("Python", "hot")[0]
    assert set(record) == set(RawSubmission.__struct_fields__) | {
        "author",
        "num_comments",
        "permalink",
        "domain",
    }
    assert record["subreddit"] == "Python" and isinstance(record["subreddit"], str)
    assert record["created_utc"] == int(source["created_utc"])
    assert type(record["created_utc"]) is int
    assert record["author"] == source["author"]
    assert record["permalink"] == source["permalink"] and record["domain"] == source["domain"]
    assert record["promoted"] is None  # not in the data: defaulted, not fetched
    assert [p for _, p, _ in fake.requests] == ["/api/v1/access_token", "/r/Python/hot"]


def test_limit_applies_per_subreddit(reddit, fake):
    records = list(listing_submissions(reddit, ["Python", "news"], "new", 7))
    expected = fake.ordered("Python", "new")[:7] + fake.ordered("news", "new")[:7]
    assert [r["id"] for r in records] == [p["id"] for p in expected]
    assert [r["subreddit"] for r in records] == ["Python"] * 7 + ["news"] * 7
    assert len(_gets(fake, "/r/Python/new")) == 1 and len(_gets(fake, "/r/news/new")) == 1


def test_deleted_author_is_named_like_pushshift(reddit, fake):
    records = {r["id"]: r for r in listing_submissions(reddit, ["Python"], "hot", None)}
    assert records["py0003"]["author"] == "[deleted]"
    assert records["py0004"]["author"] == "user4"


def test_unknown_listing_is_refused_before_any_request(reddit, fake):
    with pytest.raises(ValueError, match="must be one of top, new, hot"):
        list(listing_submissions(reddit, ["Python"], "rising", 10))
    assert fake.requests == []


def test_refresh_scores_batches_100_ids_and_returns_current_scores(reddit, fake):
    posts = fake.subs["Python"][:125] + fake.subs["news"][:122]
    for post in posts:
        post["score"] = post["ups"] = post["score"] + 5000
    ids = [p["id"] if i % 2 else p["name"] for i, p in enumerate(posts)]
    ids[10:10] = ["gone01", "t3_gone02", "gone03"]  # deleted: Reddit returns nothing for them
    records = list(refresh_scores(reddit, iter(ids)))
    assert [r["id"] for r in records] == [p["id"] for p in posts]
    assert [r["score"] for r in records] == [p["score"] for p in posts]
    assert all(r["score"] > 5000 for r in records)
    calls = _gets(fake, "/api/info")
    assert len(calls) == 3  # 250 ids at 100 a call
    assert [len(q["id"].split(",")) for q in calls] == [100, 100, 50]
    assert all(n.startswith("t3_") for q in calls for n in q["id"].split(","))


def test_refresh_of_nothing_makes_no_call(reddit, fake):
    assert list(refresh_scores(reddit, [])) == []
    assert _gets(fake, "/api/info") == []


def test_link_post_kept_and_self_post_rejected_by_the_link_filter(reddit, fake):
    link_filter = LinkFilter(LinkRules())
    records = list(listing_submissions(reddit, ["Python"], "top", 10))
    fates = {r["id"]: link_filter.check(msgspec.convert(r, RawSubmission)) for r in records}
    link = fates["py0000"]
    assert isinstance(link, Post)
    assert (link.url, link.score, link.subreddit) == (
        "https://site0.example.com/a/0",
        1000,
        "Python",
    )
    assert link.retrieved_on > 0
    self_post = fates["py0009"]
    assert isinstance(self_post, Reject) and self_post.reason == "self_post"
    assert sum(isinstance(f, Post) for f in fates.values()) == 9


def test_missing_client_id_is_one_clear_line():
    with pytest.raises(RedditAPIError) as info:
        make_reddit()
    message = str(info.value)
    assert message == (
        "Reddit API: no client_id; set praw_client_id or add it to the [DEFAULT] section "
        "of praw.ini"
    )
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_missing_client_secret_is_named(monkeypatch):
    monkeypatch.setenv("praw_client_id", "abc")
    with pytest.raises(
        RedditAPIError, match=r"^Reddit API: no client_secret; set praw_client_secret"
    ):
        make_reddit()


def test_unknown_praw_site_is_named(monkeypatch):
    monkeypatch.setenv(reddit_api.SITE_ENV, "nosuchsite")
    with pytest.raises(RedditAPIError, match=r"no \[nosuchsite\] section"):
        make_reddit()


def test_credentials_from_praw_ini_site_and_default_user_agent(server, fake, tmp_path, monkeypatch):
    httpd, _ = server
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "praw.ini").write_text(
        "[webtext]\nclient_id=ini-id\nclient_secret=ini-secret\n", encoding="utf-8"
    )
    monkeypatch.setenv(reddit_api.SITE_ENV, "webtext")
    reddit = make_reddit(oauth_url=base, reddit_url=base)
    assert reddit.read_only
    assert len(list(listing_submissions(reddit, ["news"], "top", 3))) == 3
    (token,) = fake.token_requests
    assert (token["user"], token["secret"]) == ("ini-id", "ini-secret")
    assert token["form"]["grant_type"] == ["client_credentials"]  # app-only, read-only
    assert token["ua"].startswith(USER_AGENT)


def test_credentials_and_user_agent_from_environment(server, fake, monkeypatch):
    httpd, _ = server
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("praw_client_id", "env-id")
    monkeypatch.setenv("praw_client_secret", "env-secret")
    monkeypatch.setenv("praw_user_agent", "my-crawler/2.0 by someone")
    reddit = make_reddit(oauth_url=base, reddit_url=base)
    list(refresh_scores(reddit, ["py0001"]))
    (token,) = fake.token_requests
    assert (token["user"], token["secret"]) == ("env-id", "env-secret")
    assert token["ua"].startswith("my-crawler/2.0 by someone")


def test_write_ndjson_round_trips_in_arrival_order(reddit, fake, tmp_path):
    records = listing_submissions(reddit, ["news", "Python"], "new", 20)
    path = tmp_path / "out" / "RS_api_2017-06.ndjson"
    assert write_ndjson(records, path) == 40
    lines = path.read_bytes().splitlines()
    ids = [json.loads(line)["id"] for line in lines]
    expected = fake.ordered("news", "new")[:20] + fake.ordered("Python", "new")[:20]
    assert ids == [p["id"] for p in expected]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    link_filter = LinkFilter(LinkRules())
    assert all(isinstance(link_filter.apply(line), Post | Reject) for line in lines)


def test_write_ndjson_leaves_nothing_when_the_source_fails(tmp_path):
    def broken():
        yield {"id": "a"}
        raise RuntimeError("connection lost")

    path = tmp_path / "out.ndjson"
    with pytest.raises(RuntimeError):
        write_ndjson(broken(), path)
    assert list(tmp_path.iterdir()) == []
