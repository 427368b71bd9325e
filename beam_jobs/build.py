"""`webtext build`: every stage in order, each reused when unchanged; then the books.

    links ─► fetch ─► extract+clean ─► dedup ─► shards ─► tokenizer+tokens ─► model
      │        │            │             │                                     │
      └────────┴──── OUT/rejects ─────────┘          MANIFEST.json, report/, README.md

Each stage is its own Beam pipeline that reads the previous stage's Parquet
files and records a fingerprint of its inputs and options in its folder
(`_stage.json`), so a killed or failed build continues from the last finished
stage and an unchanged rerun does nothing but the books. `--until` stops after
a stage.

OUT holds one build: `OUT/_build.json` records what identifies it (the dump
files and the link rules). A different build into the same folder is refused
before anything is written (`--overwrite` replaces it); changing a later
stage's option is not a different build, it reruns that stage and those after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.files import InputError, join, write_bytes_atomic
from beam_jobs.stage_state import read_json

ORDER = ("links", "fetch", "extract", "dedup", "shards", "tokens", "model")
BUILD_FILE = "_build.json"
# What a folder may hold to count as (a part of) a webtext build.
BUILD_ENTRIES = frozenset({
    BUILD_FILE, "sample", "reddit-api", "links", "rejects", "warc", "fetched", "clean", "dedup",
    "docs", "docs-state", "tokenizer", "tokens", "model", "report", "MANIFEST.json", "README.md",
})


@dataclass
class BuildPlan:
    """Everything a build needs, validated before anything is written."""

    out: str
    dump_files: list[tuple[str, int]]
    skipped: list[str]
    rules: object  # LinkRules
    fetch: object  # FetchConfig
    extract: object  # ExtractConfig
    clean: object  # CleanConfig
    dedup: object  # DedupParams
    shard_bytes: int
    val_fraction: float
    tokenizer_args: object  # argparse.Namespace for webtext_pipeline.tokenizer.commands
    train: dict
    until: str
    options: PipelineOptions
    recorded_options: dict
    command: list[str]
    identity: dict = field(default_factory=dict)


def _say(line: str) -> None:
    print(line, flush=True)


# -- the folder holds one build -------------------------------------------------------------

def read_identity(out: str) -> dict | None:
    """The identity of the build in OUT; {} when _build.json is unreadable (a different build)."""
    return read_json(join(out, BUILD_FILE), unreadable={})


def _difference(old: dict, new: dict) -> str:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key} was {json.dumps(old.get(key))[:80]}, now {json.dumps(new.get(key))[:80]}"
    return "unreadable _build.json"


def _different(out: str, present: dict, identity: dict) -> InputError:
    return InputError(f"--out {out}: holds a different build ({_difference(present, identity)}); "
                      "use another --out, or --overwrite to replace it")


def check_out_folder(out: str, identity: dict, overwrite: bool) -> None:
    """Refuse an output folder that holds something else; raises InputError naming --out."""
    if "://" in out:
        present = read_identity(out)
        if present is not None and present != identity and not overwrite:
            raise _different(out, present, identity)
        return
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out}: exists and is not a folder")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out):
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise InputError(f"--out {out}: cannot create it "
                             "(parent folder missing or not writable)")
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: not writable")
    present = read_identity(out)
    if present is None:
        strangers = sorted(set(os.listdir(out)) - BUILD_ENTRIES)
        if strangers and not overwrite:
            raise InputError(f"--out {out}: not empty and not a webtext build (holds "
                             f"{', '.join(strangers[:3])}); use an empty folder")
    elif present != identity and not overwrite:
        raise _different(out, present, identity)


def claim_out_folder(out: str, identity: dict, overwrite: bool) -> None:
    """Record the build's identity (after every check passed); --overwrite clears the old one."""
    present = read_identity(out)
    if overwrite and present is not None and present != identity and "://" not in out:
        for name in sorted(BUILD_ENTRIES - {"sample", "reddit-api"}):
            path = os.path.join(out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    if "://" not in out:
        os.makedirs(out, exist_ok=True)
    data = json.dumps(identity, indent=2, sort_keys=True).encode()
    write_bytes_atomic(join(out, BUILD_FILE), data)


# -- the funnel -----------------------------------------------------------------------------

def _stage_reasons(pattern: str) -> dict[str, Counter]:
    """Reject counts per (stage column, reason) from reject files matching `pattern`."""
    counts: dict[str, Counter] = {}
    for meta in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(meta.path) as handle:
            table = pq.read_table(handle, columns=["stage", "reason"])
        for stage, reason in zip(table.column("stage").to_pylist(),
                                 table.column("reason").to_pylist(), strict=True):
            counts.setdefault(stage, Counter())[reason] += 1
    return counts


def _sorted(counter: dict) -> dict:
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def extract_clean_entries(out: str, summary) -> list[dict]:
    """The combined extract+clean stage as two funnel entries (its reject rows say which)."""
    per_stage = _stage_reasons(join(out, "rejects", "extract-part-*.parquet"))
    extract_rejects = _sorted(per_stage.get("extract", {}))
    clean_rejects = _sorted(per_stage.get("clean", {}))
    extracted = summary.rows_in - sum(extract_rejects.values())
    seconds = summary.seconds
    return [
        {"stage": "extract", "in": summary.rows_in, "out": extracted, "rejects": extract_rejects,
         "seconds": seconds},
        {"stage": "clean", "in": extracted, "out": summary.rows_out, "rejects": clean_rejects,
         "seconds": 0.0},
    ]


def links_entry(summary) -> dict:
    return {"stage": "links", "in": summary.records_read, "kept": summary.posts_kept,
            "out": summary.links, "rejects": dict(summary.rejects), "seconds": summary.seconds}


def row_entry(summary) -> dict:
    entry = summary.as_dict()
    return {k: entry[k] for k in ("stage", "in", "out", "rejects", "seconds")}


# -- the stages -----------------------------------------------------------------------------

def _reused(result) -> bool:
    """A stage summary's `reused`, or every part's for a dict of parts (tokenizer + tokens)."""
    if isinstance(result, dict):
        parts = [value for value in result.values() if isinstance(value, dict)]
        return bool(result.get("reused")) or bool(parts) and all(
            part.get("reused") for part in parts)
    return bool(getattr(result, "reused", False))


def _timed(log: Callable[[str], None], name: str, fn, *args):
    log(f"build: {name} …")
    started = time.monotonic()
    result = fn(*args)
    verb = "reused" if _reused(result) else "done"
    log(f"build: {name} {verb} in {time.monotonic() - started:.1f} s")
    return result


def run_corpus_stages(plan: BuildPlan, log: Callable[[str], None]) -> list[dict]:
    """links → fetch → extract+clean → dedup → shards (as far as --until); the funnel entries."""
    from beam_jobs.dedup_job import run_dedup
    from beam_jobs.extract_job import run_extract
    from beam_jobs.fetch_job import run_fetch
    from beam_jobs.links_run import run_links
    from beam_jobs.shards_job import run_shards

    out, options = plan.out, plan.options
    stop = ORDER.index(plan.until)
    links = _timed(log, "links", run_links, plan.dump_files, plan.skipped, plan.rules, out,
                   options)
    funnel = [links_entry(links)]
    if not links.balanced:
        raise RuntimeError("links stage: records read ≠ kept + rejected")
    steps = [
        ("fetch", lambda: run_fetch(join(out, "links"), out, plan.fetch, options)),
        ("extract", lambda: run_extract(join(out, "fetched"), out, plan.extract, plan.clean,
                                        options)),
        ("dedup", lambda: run_dedup(join(out, "clean"), out, options, plan.dedup,
                                    kept_subdir="dedup")),
        ("shards", lambda: run_shards(join(out, "dedup"), out, options, plan.shard_bytes,
                                      plan.val_fraction)),
    ]
    for name, step in steps:
        if ORDER.index(name) > stop:
            break
        summary = _timed(log, name, step)
        if name == "extract":
            funnel.extend(extract_clean_entries(out, summary))
        elif name == "dedup":
            funnel.append({"stage": "dedup", "in": summary.rows_in, "out": summary.kept,
                           "rejects": dict(summary.rejects), "seconds": summary.seconds})
        else:
            funnel.append(row_entry(summary))
    return funnel


def run_model_stages(plan: BuildPlan, log: Callable[[str], None]) -> dict:
    """Tokenizer + token files, then the model (as far as --until); what the report needs."""
    from webtext_pipeline.tokenizer.commands import run_tokenizer_stage

    results: dict = {}
    if ORDER.index(plan.until) >= ORDER.index("tokens"):
        results["tokens"] = _timed(log, "tokenizer and tokens", run_tokenizer_stage,
                                   plan.tokenizer_args, log)
    if plan.until == "model":
        if importlib.util.find_spec("torch") is None:
            log("build: model skipped: torch is not installed (pip install 'webtext[train]' "
                "with the torch build for your machine)")
            return results
        from webtext_pipeline.train.stage import run_stage

        results["model"] = _timed(log, "model", lambda: run_stage(plan.out, log=log,
                                                                   **plan.train))
    return results


def _artifacts(out: str) -> list[str]:
    return [name for name in ("tokenizer", "tokens") if os.path.isdir(os.path.join(out, name))]


def write_books(plan: BuildPlan, funnel: list[dict], model: dict | None,
                log: Callable[[str], None]) -> dict:
    """MANIFEST.json, report/ and the dataset card (local output folders only)."""
    from webtext_pipeline.manifest import package_versions, write_manifest
    from webtext_pipeline.report import add_report_section, utc_now, write_card, write_report

    versions = package_versions()
    manifest = write_manifest(
        plan.out, plan.dump_files, plan.recorded_options, {"stages": funnel}, versions,
        artifacts=_artifacts(plan.out),
    )
    build = write_report(plan.out, {"stages": funnel}, command=plan.command,
                         options=plan.recorded_options, versions=versions, built_at=utc_now())
    if model:
        from webtext_pipeline.train.validate import report_fragment

        add_report_section(plan.out, "Model validation", report_fragment(model["model_dir"]),
                           key="model-validation")
    write_card(plan.out, build)
    log(f"build: {manifest['funnel']['equation']}")
    log(f"build: {manifest['corpus']['rows']:,} documents in {manifest['corpus']['files']} "
        f"shard(s) under {join(plan.out, 'docs')}; report {join(plan.out, 'report', 'index.html')}")
    return manifest


def run_build(plan: BuildPlan, log: Callable[[str], None] = _say) -> dict:
    """Run the build; returns {"funnel", "manifest"?, "model"?}. Raises on unbalanced books.

    On the DirectRunner the corpus stages run one pipeline each (resumable stage by
    stage); on any other runner they run as one pipeline (beam_jobs.full_pipeline), and a
    dry run returns after translating it.
    """
    from beam_jobs.options import is_local

    if is_local(plan.options):
        funnel = run_corpus_stages(plan, log)
    else:
        from beam_jobs.full_pipeline import run_remote_build

        remote = run_remote_build(plan, log)
        if remote["dry_run"]:
            return remote
        funnel = remote["funnel"]
    result: dict = {"funnel": funnel}
    if ORDER.index(plan.until) < ORDER.index("shards"):
        log(f"build: stopped after {plan.until} (--until)")
        return result
    if "://" in plan.out:
        log("build: the corpus is written; the tokenizer, model, MANIFEST.json, report and card "
            "are made on one machine from a local copy of OUT/docs (docs/scaling.md)")
        return result
    models = run_model_stages(plan, log)
    result.update(models)
    result["manifest"] = write_books(plan, funnel, models.get("model"), log)
    if not result["manifest"]["funnel"]["balanced"]:
        raise RuntimeError(result["manifest"]["funnel"]["equation"])
    return result
