"""Where an archived response record is, and the bounded set of those archived lately."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
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


class RecentLocations:
    """Responses this process archived, the `limit` newest kept (so memory stays flat)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._where: OrderedDict[str, ArchivedAt] = OrderedDict()

    def get(self, key: str) -> ArchivedAt | None:
        return self._where.get(key)

    def remember(self, key: str, where: ArchivedAt) -> None:
        self._where[key] = where
        self._where.move_to_end(key)
        if len(self._where) > self.limit:
            self._where.popitem(last=False)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)
