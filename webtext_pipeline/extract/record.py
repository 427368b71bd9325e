"""One fetched row in, one document (or one Reject) out: the extract stage's per-record rule.

Rules run in the order of `EXTRACT_REASONS`; a row is rejected with the first
one it fails, so every fetched row has exactly one fate.
"""

from __future__ import annotations

import atexit
import re
import threading
import weakref
from urllib.parse import urlsplit

from webtext_pipeline.records import Reject

from .core import DEFAULT_CONFIG, STAGE, ExtractConfig, Extraction, extract_page
from .worker import OK, TIMEOUT, ExtractWorker

# Sites that republish Wikipedia articles wholesale (hosts and their subdomains).
WIKIPEDIA_MIRRORS: tuple[str, ...] = (
    "wikiwand.com",
    "wikizero.com",
    "wiki2.org",
    "wikimili.com",
    "infogalactic.com",
    "wikiless.org",
    "dbpedia.org",
    "en-academic.com",
    "enacademic.com",
    "encyclopedia.thefreedictionary.com",
    "encyclopedia2.thefreedictionary.com",
    "wikipedia.com",
)

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def wikipedia_match(url: str, mirrors: tuple[str, ...] = WIKIPEDIA_MIRRORS) -> str | None:
    """The Wikipedia or mirror host `url` is on, or None."""
    host = _host(url)
    if not host:
        return None
    if host == "wikipedia.org" or host.endswith(".wikipedia.org"):
        return host
    for mirror in mirrors:
        if host == mirror or host.endswith("." + mirror):
            return host
    return None


# --------------------------------------------------------------------------
# one worker process per thread (for callers that do not manage their own)

_local = threading.local()
_workers: weakref.WeakSet = weakref.WeakSet()
_workers_lock = threading.Lock()


def thread_worker(config: ExtractConfig = DEFAULT_CONFIG) -> ExtractWorker:
    """This thread's ExtractWorker (started on first use, stopped at exit)."""
    worker = getattr(_local, "worker", None)
    if worker is None:
        worker = ExtractWorker(config)
        _local.worker = worker
        with _workers_lock:
            _workers.add(worker)
    return worker


@atexit.register
def _close_workers() -> None:
    with _workers_lock:
        workers = list(_workers)
    for worker in workers:
        worker.close()


# --------------------------------------------------------------------------


def max_date_of(row: dict) -> str | None:
    """The fetch day (YYYY-MM-DD) bounds publication dates; None when the row has none."""
    fetched = row.get("fetched_at") or ""
    match = _ISO_DAY.match(fetched)
    return match.group() if match else None


def extract_record(
    row: dict,
    config: ExtractConfig = DEFAULT_CONFIG,
    worker: ExtractWorker | None = None,
) -> dict | Reject:
    """A fetched row (records.FETCHED_SCHEMA) -> a document dict, or a Reject.

    The document is the row without `html`, plus `text`, `extractor`,
    `page_title`, `published`, `sitename`, `author` (strings, "" when unknown).
    With `config.isolate` the extraction runs in `worker` (or this thread's
    worker) under `config.timeout_s`; otherwise in this process, unprotected.
    """
    key = row.get("url") or ""
    final_url = row.get("final_url") or key
    for field_name, url in (("final_url", final_url), ("url", key)):
        host = wikipedia_match(url, config_mirrors(config))
        if host:
            return Reject(STAGE, key, "wikipedia", f"{field_name} host {host}")
    html = row.get("html") or ""
    if len(html) > config.max_html_chars:
        return Reject(STAGE, key, "too_large", f"{len(html)} chars > {config.max_html_chars}")
    max_date = max_date_of(row)
    if config.isolate:
        status, payload = (worker or thread_worker(config)).run(html, final_url, max_date, config)
        if status == TIMEOUT:
            return Reject(STAGE, key, "extract_timeout", payload)
        if status != OK:
            return Reject(STAGE, key, "extract_error", payload)
        result: Extraction = payload
    else:
        try:
            result = extract_page(html, final_url, config, max_date)
        except Exception as err:  # noqa: BLE001 - a page's failure is data
            return Reject(STAGE, key, "extract_error", f"{type(err).__name__}: {str(err)[:200]}")
    if not result.text:
        return Reject(STAGE, key, "no_text", "")
    doc = {k: v for k, v in row.items() if k != "html"}
    doc.update(
        text=result.text,
        extractor=result.extractor,
        page_title=result.page_title,
        published=result.published,
        sitename=result.sitename,
        author=result.author,
    )
    return doc


def config_mirrors(config: ExtractConfig) -> tuple[str, ...]:
    return config.wikipedia_mirrors if config.wikipedia_mirrors is not None else WIKIPEDIA_MIRRORS
