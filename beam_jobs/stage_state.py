"""Stage fingerprints: reuse a stage's output when its inputs and options are unchanged.

Each stage folder holds `_stage.json`, written last (after every shard was
renamed into place), with a fingerprint of what produced it. A rerun whose
fingerprint matches skips the stage; anything else clears the stage's old
files first, so a killed run never leaves a mix of two runs behind.
"""

from __future__ import annotations

import hashlib
import json

from apache_beam.io.filesystems import FileSystems

from beam_jobs.files import join, write_bytes_atomic
from webtext_pipeline import __version__

STAGE_FILE = "_stage.json"


def fingerprint(stage: str, inputs: object, options: object) -> str:
    """sha256 over the stage name, its inputs, its options and the package version."""
    blob = json.dumps(
        {"stage": stage, "inputs": inputs, "options": options, "version": __version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def read_json(path: str, unreadable: dict | None = None) -> dict | None:
    """A small JSON file through FileSystems: None when absent, `unreadable` when not JSON."""
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as handle:
        try:
            return json.loads(handle.read())
        except ValueError:
            return unreadable


def read_stage(stage_dir: str) -> dict | None:
    return read_json(join(stage_dir, STAGE_FILE))


def reusable(stage_dir: str, expected: str) -> dict | None:
    """The stage's recorded summary if it finished with this fingerprint, else None."""
    state = read_stage(stage_dir)
    if state and state.get("fingerprint") == expected and state.get("complete"):
        return state
    return None


def clear_outputs(patterns: list[str]) -> None:
    """Delete a stage's previous files (its marker first, so a crash leaves no false 'done')."""
    for pattern in patterns:
        matches = FileSystems.match([pattern])[0].metadata_list
        paths = sorted(m.path for m in matches)
        if paths:
            FileSystems.delete(paths)


def mark_complete(stage_dir: str, expected: str, summary: dict) -> None:
    state = dict(summary, fingerprint=expected, complete=True, version=__version__)
    data = json.dumps(state, indent=2, sort_keys=True, default=str).encode()
    write_bytes_atomic(join(stage_dir, STAGE_FILE), data)
