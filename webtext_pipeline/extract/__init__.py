"""Stage three: fetched HTML -> the page's main text and metadata.

Public API (no Beam here; beam_jobs wraps these):

- `extract_text(html, url=None) -> str`: the shipped extraction of one page,
  exactly as the pipeline applies it ("" when nothing is extracted).
- `extract_file(path, url=None) -> str`: the same for a saved page (what
  `webtext extract FILE.html [--url URL]` prints).
- `extract_page(html, url=None, config=..., max_date=None) -> Extraction`: the
  same, with metadata and which extractor's text was kept.
- `extract_record(row, config=..., worker=None) -> dict | Reject`: one
  FETCHED_SCHEMA row -> a document dict or a Reject (reasons: EXTRACT_REASONS),
  under the per-page time limit and size cap.
- `ExtractWorker`: the killable worker process behind the time limit; a Beam
  DoFn makes one in `setup` and closes it in `teardown`.
"""

from webtext_pipeline.records import EXTRACT_REASONS

from .core import (
    DEFAULT_CONFIG,
    STAGE,
    ExtractConfig,
    Extraction,
    extract_file,
    extract_page,
    extract_text,
    read_html_file,
)
from .record import (
    WIKIPEDIA_MIRRORS,
    extract_record,
    thread_worker,
    wikipedia_match,
)
from .worker import ExtractWorker

__all__ = [
    "DEFAULT_CONFIG",
    "EXTRACT_REASONS",
    "STAGE",
    "WIKIPEDIA_MIRRORS",
    "ExtractConfig",
    "ExtractWorker",
    "Extraction",
    "extract_file",
    "extract_page",
    "extract_record",
    "extract_text",
    "read_html_file",
    "thread_worker",
    "wikipedia_match",
]
