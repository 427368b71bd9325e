"""The archive index's loaded part, packed into arrays: 38 B a URL instead of ~0.5 KB.

Every fetch worker loads the index of the WARCs already archived (the caches
and OUT/warc) so that a rerun replays instead of refetching. As Python dicts
and dataclasses that cost ~0.5 KB a URL: ~22 GB per worker process to resume
a WebText build of 45M URLs. Here a URL is the 64-bit blake2b hash of its
index key in a sorted array, its location in parallel arrays (file number,
offset, length, status, capture time): 38 bytes, plus the file names once.

Two keys with one hash (p ≈ n² / 2⁶⁵: 5·10⁻⁵ at 45M URLs) would give the
later one the earlier one's record; the fetcher compares the replayed
record's own URL with the one it asked for and refetches on a mismatch.

Entries are added one by one while the index files load, then sorted on the
first lookup; among entries with one key the newest capture wins (capture
time, then WARC file name, then offset), as in `ArchiveIndex`.
"""

from __future__ import annotations

import hashlib
from array import array
from datetime import UTC, datetime

import numpy as np

from webtext_pipeline.fetch.location import ArchivedAt

NO_TIME = -(2**62)  # an unparsable WARC-Date sorts before every real capture


def key_hash(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def capture_micros(fetched_at: str) -> int:
    """A WARC-Date as microseconds since the epoch (sortable like the ISO text)."""
    try:
        when = datetime.fromisoformat(fetched_at)
    except ValueError:
        return NO_TIME
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1_000_000)


def capture_text(micros: int) -> str:
    if micros == NO_TIME:
        return ""
    return datetime.fromtimestamp(micros / 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PackedLocations:
    """URL key → where its newest response record is, in 38 bytes per key."""

    def __init__(self) -> None:
        self._files: list[tuple[str, str]] = []  # file number → (directory, WARC name)
        self._file_numbers: dict[tuple[str, str], int] = {}
        self._new = {name: array(code) for name, code in
                     (("hash", "Q"), ("file", "I"), ("offset", "q"), ("length", "q"),
                      ("status", "H"), ("when", "q"))}
        self._sorted: dict[str, np.ndarray] = {
            name: np.array(column, dtype=column.typecode) for name, column in self._new.items()
        }

    def add(self, key: str, directory: str, warc_file: str, offset: int, length: int,
            status: int, fetched_at: str) -> None:
        new = self._new
        new["hash"].append(key_hash(key))
        new["file"].append(self._file_number((directory, warc_file)))
        new["offset"].append(offset)
        new["length"].append(length)
        new["status"].append(max(0, min(status, 65535)))
        new["when"].append(capture_micros(fetched_at))

    def add_columns(self, files: list[tuple[str, str]], file_index: np.ndarray,
                    hashes: np.ndarray, offsets: np.ndarray, lengths: np.ndarray,
                    statuses: np.ndarray, captured_us: np.ndarray) -> None:
        """Many entries at once, already hashed: `files` lists (directory, WARC name) pairs
        and `file_index` points each entry at one of them (a partition file's columns)."""
        numbers = np.array([self._file_number(where) for where in files], dtype=np.uint32)
        columns = {"hash": hashes, "file": numbers[file_index], "offset": offsets,
                   "length": lengths, "status": np.clip(statuses, 0, 65535), "when": captured_us}
        for name, values in columns.items():
            column = self._new[name]
            column.frombytes(np.ascontiguousarray(values, dtype=column.typecode).tobytes())

    def _file_number(self, where: tuple[str, str]) -> int:
        """The number of a (directory, WARC name) pair, given on first sight."""
        number = self._file_numbers.get(where)
        if number is None:
            number = self._file_numbers[where] = len(self._files)
            self._files.append(where)
        return number

    def _settle(self) -> None:
        """Merge what was added since the last lookup; keep the newest capture per key."""
        if not len(self._new["hash"]):
            return
        merged = {name: np.concatenate([self._sorted[name], np.frombuffer(column, column.typecode)])
                  for name, column in self._new.items()}
        for column in self._new.values():
            del column[:]
        name_rank = np.empty(len(self._files), dtype=np.int64)
        name_rank[sorted(range(len(self._files)), key=lambda n: self._files[n][1])] = np.arange(
            len(self._files))
        order = np.lexsort((merged["offset"], name_rank[merged["file"]], merged["when"],
                            merged["hash"]))
        hashes = merged["hash"][order]
        newest = np.ones(len(hashes), dtype=bool)
        newest[:-1] = hashes[1:] != hashes[:-1]
        keep = order[newest]
        self._sorted = {name: column[keep] for name, column in merged.items()}

    def get(self, key: str) -> ArchivedAt | None:
        self._settle()
        hashes = self._sorted["hash"]
        wanted = np.uint64(key_hash(key))
        i = int(np.searchsorted(hashes, wanted))
        if i == len(hashes) or hashes[i] != wanted:
            return None
        column = self._sorted
        directory, warc_file = self._files[int(column["file"][i])]
        return ArchivedAt(directory, warc_file, int(column["offset"][i]),
                          int(column["length"][i]), int(column["status"][i]),
                          capture_text(int(column["when"][i])))

    def __len__(self) -> int:
        self._settle()
        return len(self._sorted["hash"])

    def nbytes(self) -> int:
        """Bytes held by the arrays (file names not counted: one per WARC file)."""
        self._settle()
        return sum(column.nbytes for column in self._sorted.values())
