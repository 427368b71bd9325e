"""Paths through Beam's FileSystems, so local paths, gs:// and s3:// all work.

Input checks live here too: a bad path must stop the run with one clear line
before any pipeline starts, not as a worker traceback an hour later.
"""

from __future__ import annotations

import posixpath

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from webtext_pipeline.links.dumps import is_dump_name


class InputError(ValueError):
    """A bad input path or option; the message is the one line the user sees."""


def join(base: str, *parts: str) -> str:
    """Join path parts with the right separator for the filesystem of `base`."""
    return FileSystems.join(base, *parts) if parts else base


def _has_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def match_dump_files(specs: list[str]) -> list[tuple[str, int]]:
    """Expand directories, files and globs into (path, size) of dump files, sorted.

    Raises InputError naming the first spec that matches nothing usable.
    """
    found: dict[str, int] = {}
    for spec in specs:
        pattern = spec
        if not _has_glob(spec) and _is_directory(spec):
            pattern = join(spec, "*")
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # Beam raises BeamIOError with nested detail
            raise InputError(f"--dumps {spec}: cannot list ({_one_line(exc)})") from None
        files = [m for m in results if is_dump_name(m.path)]
        if not results:
            raise InputError(f"--dumps {spec}: no such file or directory")
        if not files:
            raise InputError(
                f"--dumps {spec}: no dump files (.zst, .xz, .bz2, .gz, .json, .ndjson) there"
            )
        for meta in files:
            found[meta.path] = meta.size_in_bytes
    return sorted(found.items())


def _is_directory(path: str) -> bool:
    if "://" not in path:
        import os

        return os.path.isdir(path)
    return path.endswith("/")


def check_readable(path: str) -> None:
    """Open and read one byte, so permission and empty-file problems show up front."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            first = handle.read(1)
    except Exception as exc:
        raise InputError(f"{path}: cannot read ({_one_line(exc)})") from None
    if not first:
        raise InputError(f"{path}: file is empty")


def open_binary(path: str):
    """A binary stream of the raw (still compressed) bytes; we decompress ourselves."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write to a temporary name, then rename, so readers never see half a file."""
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        handle.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
