"""robots.txt: what a fetched (or failed) robots.txt means for the pages of its origin.

Parsing is urllib.robotparser's (groups, user-agent lines, Crawl-delay); the
matching is RFC 9309's, which robotparser does not do: the longest matching
rule wins (Allow wins a tie), and `*` / `$` in paths are wildcards (robotparser
takes them literally and would ignore `Disallow: /*.pdf$`). Our group is the
one naming our product token ("webtext", case-insensitive), else `*`.

Failure policy (RFC 9309 §2.3.1):

- 2xx: the rules in the body (first `robots_max_bytes` bytes, as the RFC allows).
- 3xx: followed, at most 5 hops; more, or a loop, counts as unavailable (allow all).
- 4xx: "unavailable" -> allow everything.
- 429 and 5xx (after the usual retries): "unreachable" -> disallow everything
  for `robots_failure_ttl`; the pages are rejected `robots_disallowed` with
  the status in the detail.
- no answer at all (dns_error, connect_error, timeout, blocked_address): the
  pages of the origin are rejected with that same reason — the page would
  fail the same way, and the reject says why. (After a robots.txt redirect,
  a hop that fails counts as unavailable: allow all.)
- Offline, an origin whose robots.txt is not in the archive is not restricted.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import urllib.robotparser
from collections import OrderedDict
from dataclasses import dataclass, field

from webtext_pipeline.fetch.content import BadEncoding, decode_body
from webtext_pipeline.fetch.response import REDIRECT_STATUSES, Redirect, StoredResponse
from webtext_pipeline.fetch.urls import BadUrl, redirect_target

MAX_ROBOTS_REDIRECTS = 5


@dataclass(frozen=True)
class Rule:
    pattern: str  # percent-quoted as robotparser stores it
    allow: bool
    regex: re.Pattern[str] = field(compare=False)


def _compile(pattern: str) -> re.Pattern[str]:
    anchored = pattern.endswith("%24")
    body = pattern[:-3] if anchored else pattern
    parts = [re.escape(p) for p in body.split("%2A")]
    return re.compile(".*".join(parts) + ("$" if anchored else ""))


def _quoted_path(url: str) -> str:
    """The path+query of `url`, quoted the way robotparser quotes rule paths."""
    parsed = urllib.parse.urlparse(urllib.parse.unquote(url))
    path = urllib.parse.urlunparse(("", "", parsed.path, parsed.params, parsed.query, ""))
    return urllib.parse.quote(path) or "/"


@dataclass(frozen=True)
class RobotsRules:
    """The verdict for one origin: rules, allow-all, disallow-all, or a failure reason."""

    rules: tuple[Rule, ...] = ()
    disallow_all: bool = False
    failure: str = ""  # a fetch reject reason when robots.txt could not be fetched at all
    detail: str = ""
    crawl_delay: float | None = None

    def verdict(self, url: str) -> tuple[str, str] | None:
        """None if `url` may be fetched, else (reject reason, detail)."""
        if self.failure:
            return self.failure, f"robots.txt: {self.detail}"
        if self.disallow_all:
            return "robots_disallowed", f"robots.txt {self.detail}: disallow all"
        path = _quoted_path(url)
        best: Rule | None = None
        for rule in self.rules:
            if rule.regex.match(path) and (
                best is None
                or len(rule.pattern) > len(best.pattern)
                or (len(rule.pattern) == len(best.pattern) and rule.allow and not best.allow)
            ):
                best = rule
        if best is None or best.allow:
            return None
        return "robots_disallowed", f"Disallow: {urllib.parse.unquote(best.pattern)}"


ALLOW_ALL = RobotsRules()


def parse_robots(body: bytes, product: str) -> RobotsRules:
    """Rules for `product` (the User-Agent's first token) from a robots.txt body."""
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(body.decode("utf-8", errors="replace").splitlines())
    token = product.lower()
    entries = [e for e in parser.entries if any(a.lower() == token for a in e.useragents)]
    if not entries and parser.default_entry is not None:
        entries = [parser.default_entry]
    rules: list[Rule] = []
    delay: float | None = None
    for entry in entries:
        for line in entry.rulelines:
            if line.path == "" and line.allowance:
                continue  # "Disallow:" (empty) allows everything: no rule
            rules.append(Rule(line.path, line.allowance, _compile(line.path)))
        if entry.delay is not None:
            delay = float(entry.delay)
    return RobotsRules(rules=tuple(rules), crawl_delay=delay)


def rules_for_status(status: int, body: bytes, product: str) -> RobotsRules:
    """The RFC 9309 reading of a final robots.txt response (redirects already followed)."""
    if 200 <= status < 300:
        return parse_robots(body, product)
    if status == 429 or status >= 500:
        return RobotsRules(disallow_all=True, detail=f"http_{status}")
    return ALLOW_ALL  # 4xx (and anything else): unavailable


def robots_verdict(resp: StoredResponse, product: str, max_bytes: int) -> Redirect | RobotsRules:
    """A robots.txt response -> the hop to follow, or the rules for its origin."""
    location = resp.header("location")
    if resp.status in REDIRECT_STATUSES and location:
        try:
            return Redirect(redirect_target(resp.url, location))
        except BadUrl:
            return ALLOW_ALL
    try:
        body = decode_body(resp.body, resp.header("content-encoding"), max_bytes, cut=True)
    except BadEncoding:
        body = b""
    return rules_for_status(resp.status, body, product)


def product_token(user_agent: str) -> str:
    """'webtext/0.1 (+https://…)' -> 'webtext'."""
    return user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"


class RobotsCache:
    """Rules per origin with an expiry, least recently used dropped past `size` origins."""

    def __init__(self, size: int, ttl: float, failure_ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self._entries: OrderedDict[str, tuple[float, RobotsRules]] = OrderedDict()

    def get(self, origin: str) -> RobotsRules | None:
        item = self._entries.get(origin)
        if item is None:
            return None
        expires, rules = item
        if time.monotonic() >= expires:
            del self._entries[origin]
            return None
        self._entries.move_to_end(origin)
        return rules

    def put(self, origin: str, rules: RobotsRules) -> None:
        failed = bool(rules.failure) or rules.disallow_all
        ttl = self.failure_ttl if failed else self.ttl
        self._entries[origin] = (time.monotonic() + ttl, rules)
        self._entries.move_to_end(origin)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
