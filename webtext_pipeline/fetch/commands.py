"""The fetch stage's command-line options and their translation into a FetchConfig.

No Beam import: the CLI adds these options to its `fetch` and `build`
commands, then hands `fetch_config(args, out)` to `beam_jobs.fetch_job.run_fetch`.

    parser = argparse.ArgumentParser()
    add_fetch_options(parser)
    config = fetch_config(parser.parse_args(argv), out="build/")   # ValueError: one line

Option → FetchConfig field:

    --fetch-concurrency N        concurrency            requests in flight per worker (32)
    --per-host-concurrency N     per_host_concurrency   requests in flight per host (2)
    --per-host-delay S           per_host_delay         seconds between starts on a host (1.0)
    --ignore-robots              respect_robots=False
    --allow-private-addresses    allow_private_addresses
    --user-agent UA              user_agent
    --max-page-bytes SIZE        max_bytes (and max_decoded_bytes = 4 × SIZE)
    --fetch-timeout S            deadline (connect/read timeouts capped by it)
    --max-redirects N            max_redirects
    --warc-cache DIR (repeat)    warc_cache (a local folder, or gs://, s3://)
    --offline                    offline
    (always)                     warc_dir = OUT/warc
"""

from __future__ import annotations

import argparse
import math
import os
import re

from webtext_pipeline.fetch.config import DEFAULT_USER_AGENT, FetchConfig

_DEFAULTS = FetchConfig()
DECODED_BYTES_FACTOR = 4  # gzip/deflate may expand a page this much before the cap stops it
WARC_DIR = "warc"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str | int) -> int:
    """'5000000', '500K', '5M', '5MiB', '1.5MB' -> bytes (K/M/G are binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * _UNITS[unit])


def add_fetch_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the "fetch stage" option group to `parser`; returns the group."""
    group = parser.add_argument_group(
        "fetch stage",
        "how pages are fetched: politeness, limits, robots.txt, the WARC archive and replay",
    )
    group.add_argument(
        "--fetch-concurrency", type=int, default=_DEFAULTS.concurrency, metavar="N",
        help="requests in flight per worker, over all hosts (default %(default)s)",
    )
    group.add_argument(
        "--per-host-concurrency", type=int, default=_DEFAULTS.per_host_concurrency, metavar="N",
        help="requests in flight per host name (default %(default)s)",
    )
    group.add_argument(
        "--per-host-delay", type=float, default=_DEFAULTS.per_host_delay, metavar="SECONDS",
        help="at least this long between two request starts on one host; a robots.txt "
        "Crawl-delay raises it, up to 10 s (default %(default)s)",
    )
    group.add_argument(
        "--ignore-robots", action="store_true",
        help="do not fetch or obey robots.txt (default: obey it, RFC 9309)",
    )
    group.add_argument(
        "--allow-private-addresses", action="store_true",
        help="allow loopback, private and link-local addresses (intranets, tests); "
        "default: refuse them (SSRF guard)",
    )
    group.add_argument(
        "--user-agent", default=_DEFAULTS.user_agent, metavar="UA",
        help="User-Agent header; its first token is the robots.txt product name "
        "(default %(default)r)",
    )
    group.add_argument(
        "--max-page-bytes", default=_DEFAULTS.max_bytes, metavar="SIZE",
        help="body bytes read per page, e.g. 5M or 500K; bigger pages are rejected too_large; "
        "decompressed bodies may be 4x this (default 5M)",
    )
    group.add_argument(
        "--fetch-timeout", type=float, default=_DEFAULTS.deadline, metavar="SECONDS",
        help="wall-clock deadline per URL, redirects and retries included "
        "(default %(default)s)",
    )
    group.add_argument(
        "--max-redirects", type=int, default=_DEFAULTS.max_redirects, metavar="N",
        help="redirects followed per URL (default %(default)s)",
    )
    group.add_argument(
        "--warc-cache", action="append", default=[], metavar="DIR",
        help="a folder of WARC files to replay before fetching (repeatable); OUT/warc is "
        "always replayed too, so a rerun does not fetch again",
    )
    group.add_argument(
        "--offline", action="store_true",
        help="never touch the network: replay the WARC cache only; other URLs are rejected "
        "not_in_archive",
    )
    return group


def _fail(option: str, value: object, problem: str) -> ValueError:
    return ValueError(f"{option} {value}: {problem}")


def fetch_config(args: argparse.Namespace, out: str) -> FetchConfig:
    """The FetchConfig for parsed options; WARC files go to OUT/warc.

    Raises ValueError with one line naming the option, e.g.
    "--per-host-delay -1.0: must be 0 or more".
    """
    def get(name: str, default: object) -> object:
        value = getattr(args, name, None)
        return default if value is None else value

    concurrency = get("fetch_concurrency", _DEFAULTS.concurrency)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise _fail("--fetch-concurrency", concurrency, "must be 1 or more")
    per_host = get("per_host_concurrency", _DEFAULTS.per_host_concurrency)
    if not isinstance(per_host, int) or per_host < 1:
        raise _fail("--per-host-concurrency", per_host, "must be 1 or more")
    delay = float(get("per_host_delay", _DEFAULTS.per_host_delay))  # type: ignore[arg-type]
    if not math.isfinite(delay) or delay < 0:
        raise _fail("--per-host-delay", delay, "must be 0 or more")
    deadline = float(get("fetch_timeout", _DEFAULTS.deadline))  # type: ignore[arg-type]
    if not math.isfinite(deadline) or deadline <= 0:
        raise _fail("--fetch-timeout", deadline, "must be more than 0 seconds")
    redirects = get("max_redirects", _DEFAULTS.max_redirects)
    if not isinstance(redirects, int) or redirects < 0:
        raise _fail("--max-redirects", redirects, "must be 0 or more")
    raw_size = get("max_page_bytes", _DEFAULTS.max_bytes)
    try:
        max_bytes = parse_size(raw_size)  # type: ignore[arg-type]
    except ValueError:
        raise _fail("--max-page-bytes", raw_size, "not a size (e.g. 5000000, 500K, 5M)") from None
    if max_bytes < 1:
        raise _fail("--max-page-bytes", raw_size, "must be 1 byte or more")
    user_agent = str(get("user_agent", DEFAULT_USER_AGENT))
    if not user_agent.strip():
        raise ValueError("--user-agent: must not be empty")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in user_agent):
        raise _fail("--user-agent", repr(user_agent), "must not contain control characters")
    caches: list[str] = []
    for cache in get("warc_cache", []) or []:  # type: ignore[union-attr]
        cache = str(cache)
        if "://" in cache:  # a bucket folder: checked by the Beam job, which can list it
            if cache not in caches:
                caches.append(cache)
            continue
        if os.path.isfile(cache):
            raise _fail("--warc-cache", cache, "is a file; give the folder that holds it")
        if not os.path.isdir(cache):
            raise _fail("--warc-cache", cache, "no such directory")
        if cache not in caches:
            caches.append(cache)
    offline = bool(get("offline", False))
    warc_dir = os.path.join(out, WARC_DIR)
    if offline and not caches and not _has_warcs(warc_dir):
        raise ValueError(
            f"--offline: nothing to replay (no --warc-cache, no WARC files in {warc_dir})"
        )
    return FetchConfig(
        user_agent=user_agent,
        connect_timeout=min(_DEFAULTS.connect_timeout, deadline),
        read_timeout=min(_DEFAULTS.read_timeout, deadline),
        deadline=deadline,
        max_bytes=max_bytes,
        max_decoded_bytes=max(max_bytes, DECODED_BYTES_FACTOR * max_bytes),
        max_redirects=redirects,
        concurrency=concurrency,
        per_host_concurrency=per_host,
        per_host_delay=delay,
        respect_robots=not bool(get("ignore_robots", False)),
        allow_private_addresses=bool(get("allow_private_addresses", False)),
        warc_dir=warc_dir,
        warc_cache=tuple(caches),
        offline=offline,
    )


def _has_warcs(directory: str) -> bool:
    if "://" in directory:
        return True  # a bucket folder: the Beam job checks it, it can list it
    return os.path.isdir(directory) and any(
        name.endswith((".warc.gz", ".warc")) for name in os.listdir(directory)
    )


__all__ = ["add_fetch_options", "fetch_config", "parse_size"]
