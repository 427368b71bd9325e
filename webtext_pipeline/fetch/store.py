"""Where archive folders live: local ones here, remote ones (gs://, s3://) through a store.

The library layer does not import Beam. The WARC writer (`warc.WarcSink`) and
the archive reader (`archive.ArchiveIndex.load`, `archive.read_response`) take
an `ArchiveStore` and ask it `is_remote(folder)`:

- a local folder is handled as it always was (os calls, pwrite, rename, no copy);
- a remote one goes through the store's five calls below. The Beam layer passes
  `beam_jobs.fetch_job.FileSystemsStore`, which implements them with Beam's
  `FileSystems` (any scheme Beam knows: gs://, s3://, ...).

This base class is the default: every path without a scheme is local, and a
remote path is an error naming the problem (the library alone cannot reach it).

A store must be picklable (a Beam DoFn ships it to every worker) and stateless.
"""

from __future__ import annotations

import posixpath
from typing import BinaryIO


class RemoteArchiveError(ValueError):
    """A remote archive folder, and no store that can reach it."""


class ArchiveStore:
    """Local folders only (the library's default); subclass for remote folders.

    The remote calls, for paths where `is_remote` is true:

        join(base, *parts) -> str       a path under a folder
        list(pattern) -> [path]         files matching a glob (`*` stays within one folder)
        open(path) -> binary stream     the raw bytes (no decompression), seekable
        publish(local_path, dest)       copy a finished local file to `dest`, then delete it
    """

    def is_remote(self, path: str) -> bool:
        return "://" in str(path)

    def join(self, base: str, *parts: str) -> str:
        return posixpath.join(str(base), *parts)

    def list(self, pattern: str) -> list[str]:
        raise self._unreachable(pattern)

    def open(self, path: str) -> BinaryIO:
        raise self._unreachable(path)

    def publish(self, local_path: str, dest: str) -> None:
        raise self._unreachable(dest)

    def _unreachable(self, path: str) -> RemoteArchiveError:
        return RemoteArchiveError(
            f"{path}: a remote archive folder needs an archive store that reaches it "
            "(run the fetch stage through Beam, or use a local folder)"
        )

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))
        return f"{type(self).__name__}({fields})"


LOCAL = ArchiveStore()


def base_name(path: str) -> str:
    """The last part of a local or remote path."""
    return str(path).rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]


__all__ = ["LOCAL", "ArchiveStore", "RemoteArchiveError", "base_name"]
