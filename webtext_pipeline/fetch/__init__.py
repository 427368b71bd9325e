"""Stage two: fetch each link's page, politely, into a WARC archive (library layer, no Beam).

    link rows ─► Fetcher.fetch_many ─► fetched rows (FETCHED_SCHEMA) | Reject rows
                    │   ▲
                    ▼   │ replay (warc_cache, offline)
                 WARC files + index/*.parquet (WARC_INDEX_SCHEMA)

Modules, one job each: `config` (FetchConfig), `urls` (normal form, host,
origin), `guard` (SSRF address policy), `connection` (the guarded requests
pool), `watchdog` (the per-URL deadline on the socket), `client` (one
bounded HTTP exchange), `politeness` (per-host queues), `robots` (RFC 9309
rules and failure policy), `content` (HTML or not, gzip/deflate with a cap),
`charset` (bytes -> text), `response` (the verdict on one stored response),
`warc` (writing), `archive` (index, replay, orphan recovery), `store` (how
remote archive folders are reached: an injected ArchiveStore), `fetcher` (the
scheduler that ties them together).
"""

from webtext_pipeline.fetch.archive import ArchiveIndex, read_response, recover_orphans
from webtext_pipeline.fetch.config import DEFAULT_USER_AGENT, FetchConfig
from webtext_pipeline.fetch.fetcher import (
    FETCHED_COLUMNS,
    STAGE,
    FetchedRow,
    Fetcher,
    FetchOutput,
    fetched_row,
)
from webtext_pipeline.fetch.location import ArchivedAt
from webtext_pipeline.fetch.store import ArchiveStore, RemoteArchiveError

__all__ = [
    "DEFAULT_USER_AGENT",
    "FETCHED_COLUMNS",
    "STAGE",
    "ArchiveIndex",
    "ArchiveStore",
    "ArchivedAt",
    "FetchConfig",
    "FetchOutput",
    "FetchedRow",
    "Fetcher",
    "RemoteArchiveError",
    "fetched_row",
    "read_response",
    "recover_orphans",
]
