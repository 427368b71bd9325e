"""The CLI's stage commands past links: fetch, extract, dedup, tokenizer, tokenize, build.

cli.py builds the parser and dispatches; this module turns parsed options into
configs (every check before anything is written) and runs the stages. Floor 4:
it may import beam_jobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from webtext_pipeline.cli_common import UsageError, check_out, print_stage_summary


def _usage(fn, *args):
    """Call fn; a ValueError from option checking becomes a one-line UsageError."""
    try:
        return fn(*args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _no_beam_flags(command: str, beam_flags: list[str]) -> None:
    if beam_flags:
        raise UsageError(f"{command}: unknown option {beam_flags[0]}")


# -- fetch ----------------------------------------------------------------------------------

def cmd_fetch(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from beam_jobs.fetch_job import run_fetch
    from beam_jobs.options import pipeline_options
    from webtext_pipeline.fetch.commands import fetch_config

    links = args.links or os.path.join(args.out, "links")
    config = _usage(fetch_config, args, args.out)
    options = pipeline_options(beam_flags)
    if "://" not in links and not os.path.isdir(links):
        raise UsageError(f"--links {links}: no such folder (run 'webtext links' first)")
    check_out(args.out)
    summary = run_fetch(links, args.out, config, options)
    print_stage_summary(summary)
    warn_damaged_warcs(args.out)
    return 0


def warn_damaged_warcs(out: str) -> None:
    """One warning line when WARCs of the archive could not be read to their end: their
    later responses are missing from the index, which no reject row would show."""
    from beam_jobs.fetch_job import INDEX_PARTITIONS_DIR
    from beam_jobs.files import join
    from beam_jobs.index_partitions import DAMAGED_WARCS, read_damaged_list

    index_dir = join(out, INDEX_PARTITIONS_DIR)
    damaged = read_damaged_list(index_dir)
    if damaged:
        first = damaged[0].split("\t", 1)[0]
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        print(f"webtext: warning: {len(damaged)} WARC file(s) in the archive could not be "
              f"read to their end ({first}{more}); see {join(index_dir, DAMAGED_WARCS)}",
              file=sys.stderr)


# -- extract (one page, for debugging) ------------------------------------------------------

def cmd_extract(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.extract.commands import run_extract_file

    _no_beam_flags("extract", beam_flags)
    try:
        text = run_extract_file(args.file, args.url)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))
    return 0


# -- dedup ----------------------------------------------------------------------------------

def cmd_dedup(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from beam_jobs.dedup_job import run_dedup
    from beam_jobs.options import pipeline_options
    from webtext_pipeline.dedup.commands import dedup_params

    params = _usage(dedup_params, args)
    options = pipeline_options(beam_flags)
    check_out(args.out)
    summary = run_dedup(args.input, args.out, options, params)
    print_stage_summary(summary)
    print(f"  LSH layout: {summary.layout[0]} bands × {summary.layout[1]} rows")
    return 0


# -- tokenizer ------------------------------------------------------------------------------

def _tokenizer_command(run, args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.tokenizer.bytelevel import TokenizerError

    _no_beam_flags(args.command, beam_flags)
    try:
        return run(args)
    except TokenizerError as exc:
        raise UsageError(str(exc)) from None


def cmd_tokenizer(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.tokenizer.commands import run_tokenizer_train

    return _tokenizer_command(run_tokenizer_train, args, beam_flags)


def cmd_tokenize(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.tokenizer.commands import run_tokenize

    return _tokenizer_command(run_tokenize, args, beam_flags)


# -- build ----------------------------------------------------------------------------------

SAMPLE_IDENTITY = "embedded sample"


def _recorded_options(args: argparse.Namespace, beam_flags: list[str]) -> dict:
    """Every option of the run for the manifest; `out` left out so that two builds of the
    same inputs in two folders record the same options."""
    skip = {"out", "command"}
    options = {k: v for k, v in sorted(vars(args).items()) if k not in skip}
    options["beam"] = list(beam_flags)
    return options


def _sample_web(out: str) -> str:
    from beam_jobs.files import join
    from webtext_pipeline.sample_web import write_sample_warc

    web = join(out, "sample", "web")
    os.makedirs(web, exist_ok=True)
    write_sample_warc(join(web, "sample-web.warc.gz"))
    return web


def build_plan(args: argparse.Namespace, beam_flags: list[str], argv: list[str]):
    """Check every option, then claim --out and gather the inputs: a BuildPlan."""
    from beam_jobs.build import BuildPlan, check_out_folder, claim_out_folder
    from beam_jobs.options import is_dry_run, pipeline_options
    from webtext_pipeline.build_options import train_settings, val_fraction
    from webtext_pipeline.cli_common import dump_inputs, link_rules
    from webtext_pipeline.dedup.commands import dedup_params
    from webtext_pipeline.extract.commands import extract_configs
    from webtext_pipeline.fetch.commands import fetch_config

    rules = link_rules(args)
    on_sample = args.source == "dumps" and not args.dumps
    fetch = _usage(fetch_config, args, args.out)
    extract, clean = _usage(extract_configs, args)
    dedup = _usage(dedup_params, args)
    fraction = _usage(val_fraction, args, on_sample)
    train = _usage(train_settings, args, on_sample)
    options = pipeline_options(beam_flags)
    if args.source == "reddit-api":
        identity_inputs: object = {"reddit-api": [args.subreddits, args.listing, args.limit]}
    elif on_sample:
        identity_inputs = SAMPLE_IDENTITY
    else:
        from beam_jobs.files import match_dump_files

        identity_inputs = match_dump_files(args.dumps)
    # As JSON reads it back from _build.json (tuples become lists), so a rerun compares equal.
    identity = json.loads(json.dumps(
        {"inputs": identity_inputs, "link_rules": dataclasses.asdict(rules)}))
    if not (is_dry_run(options) and "://" in args.out):  # a dry run never touches the bucket
        check_out_folder(args.out, identity, args.overwrite)
        claim_out_folder(args.out, identity, args.overwrite)
    files, skipped = dump_inputs(args)
    if on_sample and not args.warc_cache:
        web = _sample_web(args.out)
        fetch = dataclasses.replace(fetch, offline=True, warc_cache=(web,))
        print(f"webtext: fetching from the embedded sample web in {web} (offline replay)")
    return BuildPlan(
        out=args.out, dump_files=files, skipped=skipped, rules=rules, fetch=fetch,
        extract=extract, clean=clean, dedup=dedup, shard_bytes=args.shard_size,
        val_fraction=fraction, tokenizer_args=args, train=train, until=args.until,
        options=options, recorded_options=_recorded_options(args, beam_flags),
        command=["webtext", *argv], identity=identity,
    )


def cmd_build(args: argparse.Namespace, beam_flags: list[str], argv: list[str]) -> int:
    from beam_jobs.build import ORDER, run_build
    from webtext_pipeline.tokenizer.bytelevel import TokenizerError

    plan = build_plan(args, beam_flags, argv)
    try:
        result = run_build(plan)
    except TokenizerError as exc:
        raise UsageError(str(exc)) from None
    model = result.get("model")
    if not result.get("dry_run") and ORDER.index(plan.until) >= ORDER.index("fetch"):
        warn_damaged_warcs(args.out)
    if result.get("dry_run"):
        print(f"build: {result['transforms']} transforms in {len(result['steps'])} steps "
              "translated for the runner; nothing was submitted")
    if model and not model["validation"].get("passed", True):
        print("build: the model did not beat the unigram baseline by the margin; "
              f"see {os.path.join(args.out, 'model', 'validation.json')}", file=sys.stderr)
    return 0
