"""Beam pipeline options: pass the user's flags through, refuse the ones that cannot work.

Every flag the CLI does not know goes to Beam unchanged, so `--runner
DataflowRunner --project … --region … --temp_location gs://…` just works.
A flag Beam does not know either is a typo, and we say so instead of letting
Beam discard it with a log line nobody reads.
"""

from __future__ import annotations

import argparse
import importlib.util
import re

from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
    TestOptions,
)

from beam_jobs.files import InputError

LOCAL_RUNNERS = {"DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}
PORTABLE_RUNNERS = {"PortableRunner", "FlinkRunner", "SparkRunner", "PrismRunner"}
# Beam's own rules (pipeline_options_validator), checked here without its network calls.
PROJECT_ID = re.compile(r"[a-z][-a-z0-9:.]{4,61}[a-z0-9]")
BUCKET = re.compile(r"[a-z0-9][-_a-z0-9.]{1,61}[a-z0-9]")
SHARED_SCHEMES = ("gs://", "s3://", "hdfs://", "azfs://")


def _all_option_classes() -> list[type]:
    seen: list[type] = []
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def unknown_flags(flags: list[str]) -> list[str]:
    """Flags that no registered Beam option class accepts."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for cls in _all_option_classes():
        try:
            cls._add_argparse_args(parser)
        except argparse.ArgumentError:
            continue  # two option classes declaring one flag: the first wins
    _, unknown = parser.parse_known_args(flags)
    return [flag for flag in unknown if flag.startswith("-")]


def pipeline_options(flags: list[str]) -> PipelineOptions:
    """Validated PipelineOptions; local runs default to the in-memory DirectRunner."""
    unknown = unknown_flags(flags)
    if unknown:
        raise InputError(f"unknown option {unknown[0]} (not a webtext or Beam option)")
    options = PipelineOptions(flags)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    runner = standard.runner.split(".")[-1]
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode == "multi_threading":
        raise InputError(
            "--direct_running_mode=multi_threading silently drops elements after a Reshuffle "
            "in Beam 2.77; use in_memory (default) or multi_processing"
        )
    if runner == "DataflowRunner":
        _check_dataflow(options)
    elif runner in PORTABLE_RUNNERS:
        _check_portable(options, runner)
    return options


def is_local(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return runner.split(".")[-1] in LOCAL_RUNNERS


def _check_dataflow(options: PipelineOptions) -> None:
    gcp = options.view_as(GoogleCloudOptions)
    if not gcp.temp_location and not gcp.staging_location:
        raise InputError("DataflowRunner needs --temp_location gs://BUCKET/tmp")
    for name in ("temp_location", "staging_location"):
        value = getattr(gcp, name)
        if value and not value.startswith("gs://"):
            raise InputError(f"--{name} {value}: a remote runner needs a gs:// path")
        if value:
            bucket = value[len("gs://"):].split("/", 1)[0]
            if not BUCKET.fullmatch(bucket):
                raise InputError(f"--{name} {value}: {bucket!r} is not a valid bucket name")
    if not gcp.project:
        raise InputError("DataflowRunner needs --project PROJECT_ID")
    if not PROJECT_ID.fullmatch(gcp.project):
        raise InputError(f"--project {gcp.project}: not a project ID (6-30 characters: "
                         "lowercase letters, digits, hyphens; the ID, not the name)")
    if not gcp.region:
        raise InputError("DataflowRunner needs --region (e.g. us-central1)")
    if importlib.util.find_spec("apitools") is None:
        raise InputError("DataflowRunner needs Beam's GCP parts: "
                         "pip install 'apache-beam[gcp]==2.77.0'")


def _check_portable(options: PipelineOptions, runner: str) -> None:
    portable = options.view_as(PortableOptions)
    if runner == "PortableRunner" and not portable.job_endpoint:
        raise InputError("PortableRunner needs --job_endpoint HOST:PORT (a running job "
                         "service) or --job_endpoint=embed")
    env = (portable.environment_type or "DOCKER").upper()
    if env == "LOOPBACK":
        return  # the SDK workers run in this process's machine: local paths are fine
    temp = options.view_as(GoogleCloudOptions).temp_location
    if temp and not temp.startswith(SHARED_SCHEMES):
        raise InputError(f"--temp_location {temp}: {runner} workers ({env}) cannot see a "
                         "local path; use gs://, s3:// or hdfs://, or "
                         "--environment_type=LOOPBACK")


def _local_path(path: str) -> bool:
    return "://" not in path


def check_remote_paths(options: PipelineOptions, out: str, inputs: list[str]) -> None:
    """A runner whose workers are other machines cannot read or write this machine's files:
    one line naming the first local --out or input path (a Dataflow dry run only
    translates, so local paths pass there)."""
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").split(".")[-1]
    if runner in LOCAL_RUNNERS:
        return
    if runner == "DataflowRunner":
        if options.view_as(TestOptions).dry_run:
            return
    else:
        env = (options.view_as(PortableOptions).environment_type or "DOCKER").upper()
        if env == "LOOPBACK":
            return
    if _local_path(out):
        raise InputError(f"--out {out}: {runner} workers cannot write this machine's folders; "
                         "use gs://BUCKET/PATH")
    for path in inputs:
        if _local_path(path):
            raise InputError(f"{path}: {runner} workers cannot read this machine's files; "
                             "copy the dumps to gs:// and pass --dumps gs://BUCKET/PATH")


def is_dry_run(options: PipelineOptions) -> bool:
    """--dry_run=True: the runner translates the pipeline and runs nothing."""
    from apache_beam.options.pipeline_options import TestOptions

    return bool(options.view_as(TestOptions).dry_run)
