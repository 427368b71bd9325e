"""Beam pipeline options: pass the user's flags through, refuse the ones that cannot work.

Every flag the CLI does not know goes to Beam unchanged, so `--runner
DataflowRunner --project … --region … --temp_location gs://…` just works.
A flag Beam does not know either is a typo, and we say so instead of letting
Beam discard it with a log line nobody reads.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
)

from beam_jobs.files import InputError

LOCAL_RUNNERS = {"DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}


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
        gcp = options.view_as(GoogleCloudOptions)
        if not gcp.temp_location and not gcp.staging_location:
            raise InputError("DataflowRunner needs --temp_location gs://BUCKET/tmp")
        for name in ("temp_location", "staging_location"):
            value = getattr(gcp, name)
            if value and not value.startswith("gs://"):
                raise InputError(f"--{name} {value}: a remote runner needs a gs:// path")
    return options


def is_local(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return runner.split(".")[-1] in LOCAL_RUNNERS
