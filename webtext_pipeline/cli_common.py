"""What every CLI command shares: the one-line UsageError, link rules, dump inputs, --out.

Floor 4 (may import beam_jobs, lazily). cli.py and cli_stages.py both use it.
"""

from __future__ import annotations

import argparse
import os


class UsageError(Exception):
    """A bad option or input: printed as one line, exit status 2."""


def link_rules(args: argparse.Namespace):
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


def check_out(out: str) -> None:
    if "://" in out:
        return
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create ({exc.strerror})") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"--out {out}: not writable")


def dump_inputs(args: argparse.Namespace) -> tuple[list[tuple[str, int]], list[str]]:
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
    for path in skipped:
        print(f"webtext: skipping {path} (month after --cutoff {args.cutoff} or unnamed)")
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


def print_stage_summary(summary) -> None:
    """A row stage's books: in, out, each reject reason, balanced or not."""
    name = getattr(summary, "stage", "dedup")
    rows_out = getattr(summary, "rows_out", getattr(summary, "kept", 0))
    if summary.reused:
        print(f"{name}: reused the finished output (same inputs and options)")
    width = max([len(r) for r in summary.rejects] + [len("rows in")])
    print(f"  {'rows in':<{width}}  {summary.rows_in:>10,}")
    print(f"  {'rows out':<{width}}  {rows_out:>10,}")
    for reason, n in summary.rejects.items():
        print(f"  {reason:<{width}}  {n:>10,}")
    rejected = sum(summary.rejects.values())
    verdict = "balanced" if summary.balanced else "NOT BALANCED"
    print(f"  in = out + rejected: {summary.rows_in:,} = {rows_out:,} + {rejected:,} "
          f"({verdict}); {summary.seconds:.1f} s")
    if not summary.balanced:
        raise RuntimeError(f"{name} stage: rows in ≠ out + rejected")
