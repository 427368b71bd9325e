"""`webtext …`: parse arguments, run the stages, turn every bad input into one line.

Floor 4 of the house plan: this module may import beam_jobs; nothing below it
imports this. Flags the CLI does not know are handed to Beam (see
beam_jobs.options), so runner options work unchanged.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from collections.abc import Callable

from webtext_pipeline import __version__
from webtext_pipeline.cli_common import (
    UsageError,
    check_out,
    dump_inputs,
    link_rules,
)

__all__ = ["UsageError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and never exits with a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _add_links_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("links stage")
    group.add_argument("--cutoff", default="2017-12", help="last month included, YYYY-MM")
    group.add_argument(
        "--dumps", action="append", metavar="PATH",
        help="dump files, directories or globs (repeatable; gs:// works). "
        "Default: the embedded sample",
    )
    group.add_argument("--source", choices=("dumps", "reddit-api"), default="dumps")
    group.add_argument("--subreddits", default="", help="reddit-api: comma-separated subreddits")
    group.add_argument("--listing", choices=("top", "new", "hot"), default="top")
    group.add_argument("--limit", type=int, default=None, help="reddit-api: items per listing")
    group.add_argument(
        "--refresh-ids", metavar="FILE",
        help="reddit-api: refresh current scores of these submission ids (one per line)",
    )
    group.add_argument("--min-karma", type=int, default=3)
    group.add_argument("--karma", choices=("per-post", "sum"), default="per-post")
    group.add_argument("--keep-over-18", action="store_true")
    group.add_argument("--subreddit-blocklist", metavar="FILE")
    group.add_argument("--domain-blocklist", metavar="FILE")
    group.add_argument("--extension-blocklist", metavar="FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="webtext",
        description="Build WebText (the GPT-2 corpus) from Reddit submissions with Apache Beam.",
        epilog="Options not listed here are passed to Beam (--runner, --direct_num_workers, …).",
    )
    parser.add_argument("--version", action="version", version=f"webtext {__version__}")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    links = commands.add_parser("links", help="Reddit submissions → outbound links with karma")
    _add_links_options(links)
    links.add_argument("--out", default="out", help="output folder (default: out)")

    inspect = commands.add_parser(
        "inspect", help="summarize or query a corpus: a shard, docs/ or a build folder",
        description="Summarize a corpus from Parquet metadata and small columns, or query it "
        "with DuckDB (the corpus is the view `docs`).",
    )
    inspect.add_argument("path", metavar="PATH", help="a shard, OUT/docs or OUT")
    query = inspect.add_mutually_exclusive_group()
    query.add_argument("--doc", metavar="ID", help="print one document, all fields and full text")
    query.add_argument("--where", metavar="CONDITION",
                       help="SQL condition, e.g. \"domain = 'bbc.co.uk'\": count and first rows")
    query.add_argument("--sql", metavar="QUERY", help="any SQL over the view docs")
    inspect.add_argument("--head", type=int, metavar="N",
                         help="first N documents (with --where/--sql: rows to print)")
    inspect.add_argument("--top", type=int, default=10, metavar="N",
                         help="domains in the summary (default 10)")

    from webtext_pipeline.train.commands import add_train_options, add_validate_options

    train = commands.add_parser(
        "train", help="train a GPT-2-style model on the token files; export and validate it")
    add_train_options(train)
    train.add_argument("--out", default="out",
                       help="output folder: the model goes to OUT/model (default: out)")
    validate = commands.add_parser(
        "validate", help="score a trained model against the uniform and unigram baselines")
    add_validate_options(validate)

    _add_stage_commands(commands)
    return parser


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out", help="build folder (default: out)")


def _add_stage_commands(commands) -> None:
    from webtext_pipeline.build_options import add_build_options
    from webtext_pipeline.dedup.commands import add_dedup_options
    from webtext_pipeline.extract.commands import add_extract_options
    from webtext_pipeline.fetch.commands import add_fetch_options
    from webtext_pipeline.tokenizer.commands import (
        add_build_tokenizer_options,
        add_tokenize_options,
        add_tokenizer_train_options,
    )

    fetch = commands.add_parser("fetch", help="links → fetched pages (OUT/fetched, OUT/warc)")
    fetch.add_argument("--links", metavar="DIR", help="links stage output (default OUT/links)")
    add_fetch_options(fetch)
    _add_out(fetch)

    extract = commands.add_parser(
        "extract", help="print the main text of one saved page, as the pipeline extracts it")
    extract.add_argument("file", metavar="FILE.html")
    extract.add_argument("--url", help="the page's URL (helps metadata and link rules)")

    dedup = commands.add_parser("dedup", help="documents → exact and near-duplicate removal")
    dedup.add_argument("--in", dest="input", required=True, metavar="DIR",
                       help="folder of Parquet documents (id, text, …)")
    add_dedup_options(dedup)
    _add_out(dedup)

    tokenizer = commands.add_parser("tokenizer", help="tokenizer commands")
    actions = tokenizer.add_subparsers(dest="action", parser_class=_Parser, required=True)
    train = actions.add_parser("train", help="train a byte-level BPE on OUT/docs")
    add_tokenizer_train_options(train)
    _add_out(train)
    tokenize = commands.add_parser("tokenize", help="shards → OUT/tokens/train.bin, val.bin")
    add_tokenize_options(tokenize)
    _add_out(tokenize)

    build = commands.add_parser(
        "build", help="the whole corpus: links → fetch → extract → clean → dedup → shards → "
        "tokenizer → model")
    _add_links_options(build)
    add_fetch_options(build)
    add_extract_options(build)
    add_dedup_options(build)
    add_build_tokenizer_options(build)
    add_build_options(build)
    _add_out(build)


def _print_links_summary(summary) -> None:
    width = max([len(r) for r in summary.rejects] + [len("records read")])
    if summary.reused:
        print("links: reused the finished output (same inputs and options)")
    print(f"links: {len(summary.files)} file(s) read, {len(summary.skipped_files)} skipped "
          f"(month after the cutoff or not a dump)")
    print(f"  {'records read':<{width}}  {summary.records_read:>10,}")
    print(f"  {'posts kept':<{width}}  {summary.posts_kept:>10,}  → {summary.links:,} links")
    for reason, n in summary.rejects.items():
        print(f"  {reason:<{width}}  {n:>10,}")
    verdict = "balanced" if summary.balanced else "NOT BALANCED"
    print(f"  read = kept + rejected: {summary.records_read:,} = {summary.posts_kept:,} + "
          f"{summary.rejected:,} ({verdict}); {summary.seconds:.1f} s")


def _run_links(args: argparse.Namespace, beam_flags: list[str]):
    from beam_jobs.links_run import run_links
    from beam_jobs.options import pipeline_options

    rules = link_rules(args)
    options = pipeline_options(beam_flags)
    check_out(args.out)
    files, skipped = dump_inputs(args)
    summary = run_links(files, skipped, rules, args.out, options)
    _print_links_summary(summary)
    truncated = summary.rejects.get("truncated_file", 0)
    if truncated:
        print(f"webtext: warning: {truncated} dump file(s) truncated or corrupt; "
              f"see reason truncated_file in {args.out}/rejects", file=sys.stderr)
    if not summary.balanced:
        raise RuntimeError("links stage: records read ≠ kept + rejected")
    return summary


def cmd_links(args: argparse.Namespace, beam_flags: list[str]) -> int:
    _run_links(args, beam_flags)
    return 0


def cmd_inspect(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.inspect_corpus import InspectError, run_inspect

    if beam_flags:
        raise UsageError(f"inspect: unknown option {beam_flags[0]}")
    try:
        return run_inspect(args.path, head_n=args.head, doc_id=args.doc, where_sql=args.where,
                           sql_query=args.sql, top=args.top)
    except InspectError as exc:
        raise UsageError(str(exc)) from None


def _train_command(run, args: argparse.Namespace, beam_flags: list[str]) -> int:
    if beam_flags:
        raise UsageError(f"unrecognized arguments: {' '.join(beam_flags)}")
    from webtext_pipeline.train import TrainUsageError

    try:
        return run(args)
    except TrainUsageError as exc:
        raise UsageError(str(exc)) from None


def cmd_train(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.train.commands import run_train

    return _train_command(run_train, args, beam_flags)


def cmd_validate(args: argparse.Namespace, beam_flags: list[str]) -> int:
    from webtext_pipeline.train.commands import run_validate

    return _train_command(run_validate, args, beam_flags)


def _stage_command(name: str) -> Callable[[argparse.Namespace, list[str]], int]:
    def run(args: argparse.Namespace, beam_flags: list[str]) -> int:
        from webtext_pipeline import cli_stages

        return getattr(cli_stages, f"cmd_{name}")(args, beam_flags)

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "train": cmd_train,
    "validate": cmd_validate,
    "links": cmd_links,
    "inspect": cmd_inspect,
    **{name: _stage_command(name) for name in ("fetch", "extract", "dedup", "tokenizer",
                                               "tokenize")},
}


def main(argv: list[str] | None = None) -> int:
    # Beam logs import-time noise (optional GCP clients) at WARNING on the root logger;
    # the CLI prints its own warnings, so only errors from libraries get through.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    try:
        args, beam_flags = parser.parse_known_args(argv)
        if args.command == "build":
            from webtext_pipeline.cli_stages import cmd_build

            return cmd_build(args, beam_flags, list(sys.argv[1:] if argv is None else argv))
        return COMMANDS[args.command](args, beam_flags)
    except UsageError as exc:
        print(f"webtext: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("webtext: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # InputError and friends: one line, no traceback
        from beam_jobs.files import InputError

        if isinstance(exc, InputError):
            print(f"webtext: error: {exc}", file=sys.stderr)
            return 2
        if os.environ.get("WEBTEXT_DEBUG"):
            raise
        first_line = (str(exc).splitlines() or ["(no message)"])[0][:400]
        print(f"webtext: failed: {type(exc).__name__}: {first_line}"
              " (set WEBTEXT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def run() -> None:
    """The console script: `main()`, then leave without C++ static destructors.

    After a local multi_processing run, grpc's native threads occasionally abort the
    interpreter's teardown ("terminate called without an active exception", SIGABRT:
    about 1 run in 12 of the sample build with 2 workers), turning a finished, balanced
    build into exit code 134. Python-level cleanup (atexit handlers, log and stream
    flushing) still runs here; only the native teardown is skipped.
    """
    code = main()
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    run()
