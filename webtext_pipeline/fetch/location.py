"""Where one archived response record is: shared by the archive index and its packed part."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchivedAt:
    """Where one URL's response record is."""

    directory: str
    warc_file: str
    offset: int
    length: int
    status: int
    fetched_at: str
    # A record this process wrote for a remote `directory`: the local staging folder
    # that holds its file until it is published (read there first).
    staged: str | None = None
