"""`webtext …`: parse arguments, run the stages, turn every bad input into one line.

Floor 4 of the house plan: this module may import beam_jobs; nothing below it
imports this. Flags the CLI does not know are handed to Beam (see
beam_jobs.options), so runner options work unchanged.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from webtext_pipeline import __version__

STAGES = ("links", "fetch", "extract", "clean", "dedup", "shards", "tokenizer", "train")
AVAILABLE_STAGES = ("links",)


class UsageError(Exception):
    """A bad option or input: printed as one line, exit status 2."""


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

    build = commands.add_parser("build", help="the whole corpus: every stage that exists")
    _add_links_options(build)
    build.add_argument("--out", default="out", help="output folder (default: out)")
    return parser


def _rules(args: argparse.Namespace):
    from webtext_pipeline.links.submissions import LinkRules

    for flag in ("subreddit_blocklist", "domain_blocklist", "extension_blocklist"):
        path = getattr(args, flag)
        if path and not os.path.isfile(path):
            raise UsageError(f"--{flag.replace('_', '-')} {path}: no such file")
    if args.min_karma < 0:
        raise UsageError(f"--min-karma {args.min_karma}: must be 0 or more")
    try:
        return LinkRules(
            cutoff=args.cutoff,
            min_karma=args.min_karma,
            karma=args.karma,
            keep_over_18=args.keep_over_18,
            subreddit_blocklist=args.subreddit_blocklist,
            domain_blocklist=args.domain_blocklist,
            extension_blocklist=args.extension_blocklist,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_out(out: str) -> None:
    if "://" in out:
        return
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out {out}: not writable")


def _dump_inputs(args: argparse.Namespace) -> tuple[list[tuple[str, int]], list[str]]:
    """The dump files to read (path, size) and those skipped as after the cutoff."""
    from beam_jobs.files import check_readable, join, match_dump_files
    from webtext_pipeline.links.dumps import select_months

    if args.source == "reddit-api":
        return _reddit_api_inputs(args), []
    specs = args.dumps
    if not specs:
        from webtext_pipeline.links.sample import write_sample_dumps

        sample_dir = join(args.out, "sample", "dumps")
        write_sample_dumps(sample_dir)
        specs = [sample_dir]
        print(f"webtext: no --dumps given; using the embedded sample in {sample_dir}")
    found = match_dump_files(specs)
    chosen, skipped = select_months([path for path, _ in found], args.cutoff)
    if not chosen:
        months = ", ".join(sorted({p.rsplit("/", 1)[-1] for p, _ in found}))[:200]
        raise UsageError(
            f"--dumps {' '.join(specs)}: no file for a month at or before {args.cutoff} "
            f"(found: {months})"
        )
    for path in chosen:
        check_readable(path)
    sizes = dict(found)
    return [(path, sizes[path]) for path in chosen], skipped


def _reddit_api_inputs(args: argparse.Namespace) -> list[tuple[str, int]]:
    path = os.path.join(args.out, "reddit-api", "submissions.ndjson")
    subreddits = [name.strip() for name in args.subreddits.split(",") if name.strip()]
    if not subreddits and not args.refresh_ids:
        raise UsageError("--source reddit-api needs --subreddits a,b or --refresh-ids FILE")
    if args.refresh_ids and not os.path.isfile(args.refresh_ids):
        raise UsageError(f"--refresh-ids {args.refresh_ids}: no such file")
    from webtext_pipeline.links import reddit_api

    try:
        reddit = reddit_api.make_reddit()
    except reddit_api.RedditAPIError as exc:
        raise UsageError(str(exc)) from None
    if args.refresh_ids:
        with open(args.refresh_ids, encoding="utf-8") as handle:
            ids = [line.strip() for line in handle if line.strip()]
        records = reddit_api.refresh_scores(reddit, ids)
    else:
        records = reddit_api.listing_submissions(reddit, subreddits, args.listing, args.limit)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    written = reddit_api.write_ndjson(records, path)
    print(f"webtext: {written} submissions from the Reddit API → {path}")
    return [(path, os.path.getsize(path))]


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

    rules = _rules(args)
    options = pipeline_options(beam_flags)
    _check_out(args.out)
    files, skipped = _dump_inputs(args)
    for path in skipped:
        print(f"webtext: skipping {path} (month after --cutoff {args.cutoff} or unnamed)")
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


def cmd_build(args: argparse.Namespace, beam_flags: list[str]) -> int:
    _run_links(args, beam_flags)
    pending = [stage for stage in STAGES if stage not in AVAILABLE_STAGES]
    print(f"build: ran {', '.join(AVAILABLE_STAGES)}; not yet available: {', '.join(pending)}")
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


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "train": cmd_train,
    "validate": cmd_validate,
    "links": cmd_links,
    "inspect": cmd_inspect,
    "build": cmd_build,
}


def main(argv: list[str] | None = None) -> int:
    # Beam logs import-time noise (optional GCP clients) at WARNING on the root logger;
    # the CLI prints its own warnings, so only errors from libraries get through.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    try:
        args, beam_flags = parser.parse_known_args(argv)
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
        print(f"webtext: failed: {type(exc).__name__}: {str(exc).splitlines()[0][:400]}"
              " (set WEBTEXT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
