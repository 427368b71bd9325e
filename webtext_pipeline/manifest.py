"""OUT/MANIFEST.json: what went into a build and what came out, checksummed.

The manifest records the inputs (dump files with sizes and sha256), every
option, the versions of the packages that did the work, the funnel (counts in
and out per stage, drops per reason, and the conservation check
``links = documents + Σ rejects``) and each corpus shard's rows, bytes and
sha256.

It is deterministic: the same inputs, options and shards give a byte-identical
file. Keys are sorted, lists are put in a fixed order, paths under the build
directory are written relative to it, and nothing time-dependent goes in
unless the caller passes it (``built_at``); per-stage timings (``seconds``)
and reuse flags are dropped from the funnel on purpose. Two builds of the same
inputs into two folders differ only where the caller's ``options`` name the
folder itself.

Library layer: no Beam import; local files only.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence

import pyarrow.parquet as pq

from webtext_pipeline import __version__
from webtext_pipeline.records import SCHEMA_VERSION

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_VERSION = "1"
SHARD_GLOB_DIR = "docs"
SHARD_PREFIX = "shard-"

# Distribution names (as pip knows them) whose versions are recorded when installed.
PACKAGES = (
    "webtext",
    "apache-beam",
    "pyarrow",
    "trafilatura",
    "readability-lxml",
    "datasketch",
    "langdetect",
    "tokenizers",
    "torch",
    "duckdb",
)

# The stage keys a funnel entry keeps; anything else (seconds, reused, fingerprint) is
# run-dependent and left out so that two builds of the same inputs agree.
_STAGE_KEYS = ("stage", "in", "out", "kept", "rejects")


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units), for the report, the card and `inspect`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class ManifestError(ValueError):
    """A manifest input is malformed (a funnel without counts, an unreadable shard)."""


# -- checksums ------------------------------------------------------------------------------

def sha256_file(path: str, chunk_size: int = 1 << 20) -> str:
    """The file's sha256, read in 1 MiB chunks (memory does not grow with the file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


def describe_input(item: Mapping | Sequence, hash_files: bool = True,
                   root: str | None = None) -> dict:
    """One input as ``{"path", "bytes", "sha256"}``; accepts a dict or a ``(path, bytes)`` pair.

    A local file's size is read from disk when not given and its sha256 computed when not
    given (and ``hash_files``); a remote one (gs://…) keeps what the caller passed, or null.
    A local file inside ``root`` (the build folder: the embedded sample's dumps are written
    to OUT/sample/dumps) is recorded relative to it, so the manifest does not name OUT.
    """
    if isinstance(item, Mapping):
        path, size, digest = item.get("path"), item.get("bytes"), item.get("sha256")
    else:
        path, size = item[0], item[1] if len(item) > 1 else None
        digest = item[2] if len(item) > 2 else None
    if not isinstance(path, str) or not path:
        raise ManifestError(f"input {item!r}: no path")
    if _is_local(path) and os.path.isfile(_local(path)):
        if size is None:
            size = os.path.getsize(_local(path))
        if digest is None and hash_files:
            digest = sha256_file(_local(path))
    if root is not None and _is_local(path):
        full, top = os.path.abspath(_local(path)), os.path.abspath(root)
        if full.startswith(top + os.sep):
            path = os.path.relpath(full, top).replace(os.sep, "/")
    return {"path": path, "bytes": None if size is None else int(size), "sha256": digest}


def shard_files(out_dir: str) -> list[str]:
    """The corpus shards ``OUT/docs/shard-*.parquet``, sorted by name."""
    docs = os.path.join(out_dir, SHARD_GLOB_DIR)
    if not os.path.isdir(docs):
        return []
    names = sorted(
        name for name in os.listdir(docs)
        if name.startswith(SHARD_PREFIX) and name.endswith(".parquet")
    )
    return [os.path.join(docs, name) for name in names]


def describe_file(path: str, root: str) -> dict:
    """``{"path" (relative to root, / separated), "bytes", "sha256"}`` of one local file."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return {"path": rel, "bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def shard_entries(out_dir: str) -> list[dict]:
    """Each shard's path (relative to OUT), rows (from the Parquet footer), bytes and sha256."""
    entries = []
    for path in shard_files(out_dir):
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # pyarrow raises several kinds for a bad footer
            raise ManifestError(f"{path}: not a readable Parquet file ({exc})") from None
        entries.append(describe_file(path, out_dir) | {"rows": rows})
    return entries


def corpus_sha256(shards: Iterable[Mapping]) -> str:
    """One checksum for the whole corpus: sha256 over "path sha256" lines of the shards."""
    lines = "".join(f"{s['path']} {s['sha256']}\n" for s in sorted(shards, key=lambda s: s["path"]))
    return hashlib.sha256(lines.encode()).hexdigest()


def artifact_entries(out_dir: str, folders: Iterable[str]) -> list[dict]:
    """Every file under the given folders of OUT (e.g. ``tokenizer``, ``tokens``), checksummed."""
    entries = []
    for folder in folders:
        top = os.path.join(out_dir, folder)
        if os.path.isfile(top):
            entries.append(describe_file(top, out_dir))
            continue
        for base, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(".tmp"):
                    entries.append(describe_file(os.path.join(base, name), out_dir))
    return sorted(entries, key=lambda e: e["path"])


# -- versions -------------------------------------------------------------------------------

def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the output (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "webtext":
                versions[name] = __version__
    return dict(sorted(versions.items()))


# -- the funnel -----------------------------------------------------------------------------

def _count(entry: Mapping, key: str) -> int:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ManifestError(f"funnel stage {entry.get('stage')!r}: {key!r} must be a count, "
                            f"got {value!r}")
    return value


def balance_funnel(funnel: Mapping) -> dict:
    """Check the books: every stage's ``in = kept + Σ rejects`` and ``links = docs + Σ rejects``.

    Input: ``{"stages": [{"stage", "in", "out", "rejects": {reason: n}, "kept"?}, …],
    "links"?, "documents"?}``. ``kept`` is for a stage whose rows out are not the records it
    kept: the links stage reads submissions (``in``), keeps posts (``kept``) and writes fewer
    links (``out``). ``links`` defaults to the links stage's ``out`` (else the first stage's
    ``in``), ``documents`` to the last stage's ``out``.

    Returns a normalized copy with, per stage, ``rejected`` and ``balanced``; and overall
    ``rejected`` (Σ rejects of the stages after links), ``balanced`` (the conservation over
    links entering fetch), ``stages_balanced``, ``chained`` (each stage reads what the one
    before wrote), ``equation`` (a printable line) and, when a links stage is given,
    ``links_stage`` (records_read = kept + rejects).
    """
    if not isinstance(funnel, Mapping) or not isinstance(funnel.get("stages"), list):
        raise ManifestError("funnel: expected {'stages': [...], 'links': n, 'documents': n}")
    stages = []
    for raw in funnel["stages"]:
        if not isinstance(raw, Mapping) or not raw.get("stage"):
            raise ManifestError(f"funnel: a stage entry without a name: {raw!r}")
        rejects = raw.get("rejects") or {}
        if not isinstance(rejects, Mapping):
            raise ManifestError(f"funnel stage {raw['stage']!r}: rejects must be a dict")
        entry = {"stage": str(raw["stage"]), "in": _count(raw, "in"), "out": _count(raw, "out")}
        if "kept" in raw:
            entry["kept"] = _count(raw, "kept")
        entry["rejects"] = {
            str(reason): _count(rejects, reason)
            for reason in sorted(rejects, key=lambda r: (-rejects[r], str(r)))
        }
        entry["rejected"] = sum(entry["rejects"].values())
        entry["balanced"] = entry["in"] == entry.get("kept", entry["out"]) + entry["rejected"]
        stages.append(entry)
    links_stage = next((s for s in stages if s["stage"] == "links"), None)
    after = [s for s in stages if s["stage"] != "links"]
    default_links = links_stage["out"] if links_stage else (after[0]["in"] if after else 0)
    links = funnel.get("links", default_links)
    documents = funnel.get("documents", after[-1]["out"] if after else links)
    for name, value in (("links", links), ("documents", documents)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ManifestError(f"funnel: {name!r} must be a count, got {value!r}")
    rejected = sum(s["rejected"] for s in after)
    chained = all(a["out"] == b["in"] for a, b in zip(after, after[1:], strict=False))
    if after:
        chained = chained and after[0]["in"] == links
    result = {
        "stages": stages,
        "links": links,
        "documents": documents,
        "rejected": rejected,
        "rejected_by_stage": {s["stage"]: s["rejected"] for s in after},
        "balanced": links == documents + rejected,
        "stages_balanced": all(s["balanced"] for s in stages),
        "chained": chained,
        "equation": (f"links = documents + Σ rejects: {links:,} = {documents:,} + {rejected:,}"
                     f" ({'balanced' if links == documents + rejected else 'NOT BALANCED'})"),
    }
    if links_stage:
        kept = links_stage.get("kept", links_stage["out"])
        result["links_stage"] = {
            "records_read": links_stage["in"],
            "kept": kept,
            "links": links_stage["out"],
            "rejected": links_stage["rejected"],
            "balanced": links_stage["balanced"],
        }
    return result


# -- the manifest ---------------------------------------------------------------------------

def _plain(value):
    """Options as JSON: tuples/sets become lists (sets sorted), unknown objects their str()."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def build_manifest(
    out_dir: str,
    inputs: Iterable[Mapping | Sequence],
    options: Mapping,
    funnel: Mapping,
    versions: Mapping[str, str] | None = None,
    *,
    built_at: str | None = None,
    command: Sequence[str] | str | None = None,
    artifacts: Iterable[str] = (),
    hash_inputs: bool = True,
) -> dict:
    """The manifest as a dict (nothing written); see :func:`write_manifest`."""
    shards = shard_entries(out_dir)
    balance = balance_funnel(funnel)
    versions = package_versions() if versions is None else versions
    rows = sum(s["rows"] for s in shards)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "schema_version": SCHEMA_VERSION,
        "inputs": sorted((describe_input(i, hash_inputs, out_dir) for i in inputs),
                         key=lambda i: i["path"]),
        "options": _plain(dict(options)),
        "versions": dict(sorted(versions.items())),
        "funnel": balance,
        "shards": shards,
        "corpus": {
            "files": len(shards),
            "rows": rows,
            "bytes": sum(s["bytes"] for s in shards),
            "sha256": corpus_sha256(shards),
            "rows_match_funnel": rows == balance["documents"],
        },
    }
    if command is not None:
        manifest["command"] = command if isinstance(command, str) else list(command)
    if built_at is not None:
        manifest["built_at"] = built_at
    artifacts = list(artifacts)
    if artifacts:
        manifest["artifacts"] = artifact_entries(out_dir, artifacts)
    return manifest


def dumps(manifest: Mapping) -> str:
    """The canonical text: sorted keys, two-space indent, UTF-8, a final newline."""
    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_manifest(
    out_dir: str,
    inputs: Iterable[Mapping | Sequence],
    options: Mapping,
    funnel: Mapping,
    versions: Mapping[str, str] | None = None,
    *,
    built_at: str | None = None,
    command: Sequence[str] | str | None = None,
    artifacts: Iterable[str] = (),
    hash_inputs: bool = True,
) -> dict:
    """Write OUT/MANIFEST.json (atomically) and return it.

    ``inputs``: dump files as ``{"path", "bytes", "sha256"?}`` dicts or ``(path, bytes)``
    pairs; missing sizes and checksums of local files are computed (streaming).
    Inputs inside OUT are recorded relative to it. ``options``: every option of the run,
    recorded as given (leave ``out`` itself out to compare builds made in two folders).
    ``funnel``: see :func:`balance_funnel`. ``versions``: defaults to
    :func:`package_versions`.
    ``built_at``: a wall-clock time to record; left out when None so that two builds of
    the same inputs give identical manifests. ``artifacts``: folders of OUT (tokenizer,
    tokens, …) whose files are checksummed too.
    """
    manifest = build_manifest(out_dir, inputs, options, funnel, versions, built_at=built_at,
                              command=command, artifacts=artifacts, hash_inputs=hash_inputs)
    path = os.path.join(out_dir, MANIFEST_NAME)
    os.makedirs(out_dir, exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(dumps(manifest))
    os.replace(path + ".tmp", path)
    return manifest


def read_manifest(out_dir: str) -> dict:
    path = os.path.join(out_dir, MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise ManifestError(f"{path}: not JSON ({exc})") from None


def verify_manifest(out_dir: str) -> list[str]:
    """Recheck the shards against the manifest; the list of problems (empty when all match)."""
    manifest = read_manifest(out_dir)
    problems = []
    recorded = {s["path"]: s for s in manifest.get("shards", [])}
    present = {s["path"]: s for s in shard_entries(out_dir)}
    for path in sorted(recorded.keys() - present.keys()):
        problems.append(f"{path}: listed in the manifest but missing")
    for path in sorted(present.keys() - recorded.keys()):
        problems.append(f"{path}: present but not in the manifest")
    for path in sorted(recorded.keys() & present.keys()):
        for key in ("rows", "bytes", "sha256"):
            if recorded[path].get(key) != present[path][key]:
                problems.append(f"{path}: {key} {present[path][key]} ≠ manifest "
                                f"{recorded[path].get(key)}")
    return problems
