"""The fetch stage's settings: one frozen, picklable dataclass.

A Beam DoFn ships this object to every worker and builds its `Fetcher` from
it in `setup()`; nothing in here opens a socket or a file. The defaults are
the polite production values; tests shrink the timeouts and caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DEFAULT_USER_AGENT = "webtext/0.1 (+https://github.com/webtext/webtext)"


@dataclass(frozen=True)
class FetchConfig:
    """Everything that decides how a URL is fetched, archived and judged."""

    user_agent: str = DEFAULT_USER_AGENT
    # Time limits, seconds. `deadline` is a hard wall clock per URL from its first
    # request (redirect hops, retries and their waits included, queueing before the
    # first request excluded); it also stops bodies drip-fed below the read timeout.
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 60.0
    # Size caps. `max_bytes` counts body bytes as they come off the wire (after
    # de-chunking, before Content-Encoding); `max_decoded_bytes` counts them after
    # gzip/deflate, so a decompression bomb stops at the cap.
    max_bytes: int = 5 * MIB
    max_decoded_bytes: int = 20 * MIB
    max_redirects: int = 10
    # Retries of 429, 5xx and dropped connections: exponential backoff with jitter,
    # `backoff_base * 2**attempt` seconds (half to full), at most `backoff_max`.
    # A Retry-After longer than `retry_after_max` ends the URL at once (http_429).
    retries: int = 3
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 30.0
    # Concurrency: worker threads (requests in flight) per Fetcher, and politeness
    # per host name: at most `per_host_concurrency` at once and at least
    # `per_host_delay` seconds between two request starts. A robots.txt
    # Crawl-delay raises the delay for its host, up to `max_crawl_delay`.
    concurrency: int = 32
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0
    max_crawl_delay: float = 10.0
    # robots.txt (RFC 9309). Rules are cached per origin for `robots_ttl` seconds
    # (a failed robots fetch for `robots_failure_ttl`), at most `robots_cache_size` origins.
    respect_robots: bool = True
    robots_max_bytes: int = 500 * KIB
    robots_ttl: float = 24 * 3600.0
    robots_failure_ttl: float = 600.0
    robots_cache_size: int = 100_000
    # SSRF guard: refuse non-public addresses unless this is set (intranets, tests).
    # `allowed_networks` lists CIDR blocks treated as public (e.g. one test address).
    allow_private_addresses: bool = False
    allowed_networks: tuple[str, ...] = ()
    # Archive: responses go to `warc_dir` (None: nothing is archived). URLs found in
    # `warc_cache` directories (and in `warc_dir` itself) are replayed, not fetched.
    # Either may be remote (gs://, s3://) when the Fetcher is given a store that reaches
    # it (the Beam jobs pass one); WARCs for a remote `warc_dir` are written in
    # `warc_staging` (a local folder; None: <tmp>/webtext-warc-staging) and published
    # there when finished.
    warc_dir: str | None = None
    warc_cache: tuple[str, ...] = ()
    warc_staging: str | None = None
    offline: bool = False
    # Where the archive index was written split by host (`partitioned_index`): set,
    # the Fetcher loads a partition at a time from there instead of indexing every
    # cache directory at start. The Beam fetch job writes the partitions and sets it.
    index_partitions_dir: str | None = None
    index_partitions: int = 0
    warc_max_bytes: int = 1 * GIB
    # A WARC file's index rows stay in memory until it is finished (~0.5 KB each), so a
    # file is also rotated after this many responses: memory stays flat in the URL count.
    warc_max_records: int = 20_000
    # How many input rows one `fetch_many` call reads ahead of its outputs; the
    # look-ahead that lets other hosts proceed while a hot host waits its turn.
    max_pending: int = 10_000
    # Seed of the retry-jitter generator (None: from the OS). Output rows never depend on it.
    seed: int | None = None
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        # Accept lists (from JSON or argparse) but store tuples, so the config stays hashable.
        for name in ("warc_cache", "allowed_networks", "extra_headers"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(
                self, name, tuple(tuple(v) if isinstance(v, list) else v for v in value)
            )
        positive = (
            "connect_timeout", "read_timeout", "deadline", "max_bytes", "max_decoded_bytes",
            "concurrency", "per_host_concurrency", "warc_max_bytes", "warc_max_records",
            "max_pending",
            "robots_max_bytes", "robots_cache_size",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchConfig.{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "max_redirects", "retries", "backoff_base", "backoff_max", "retry_after_max",
            "per_host_delay", "max_crawl_delay", "robots_ttl", "robots_failure_ttl",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"FetchConfig.{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def cache_dirs(self) -> tuple[str, ...]:
        """Where archived responses are looked up: the cache dirs, then `warc_dir` (resume)."""
        dirs = list(self.warc_cache)
        if self.warc_dir and self.warc_dir not in dirs:
            dirs.append(self.warc_dir)
        return tuple(dirs)
