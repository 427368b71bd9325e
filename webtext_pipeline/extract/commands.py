"""The extract and clean stages' command-line surface (argparse only; no Beam import).

`add_extract_options(parser)` adds the "extract and clean" option group to a
subcommand; `extract_configs(args)` turns the parsed values into
`(ExtractConfig, CleanConfig)`, raising ValueError with one line naming the
option when a value cannot work. `run_extract_file(path, url)` is what
`webtext extract FILE.html [--url URL]` prints.

Only the thresholds a user most needs are options (docs/extraction.md gives
the rest as `ExtractConfig` / `CleanConfig` fields).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re

from webtext_pipeline.clean import DEFAULT_CONFIG as CLEAN_DEFAULTS
from webtext_pipeline.clean import CleanConfig

from .core import DEFAULT_CONFIG as EXTRACT_DEFAULTS
from .core import ExtractConfig, extract_file

READABILITY_MODES = ("auto", "always", "never")
_LANG_CODE = re.compile(r"^[a-z]{2,3}(-[a-z]{2,4})?$")


def add_extract_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the "extract and clean" option group (defaults = the shipped configs)."""
    e, c = EXTRACT_DEFAULTS, CLEAN_DEFAULTS
    group = parser.add_argument_group(
        "extract and clean", "main text from each page, then quality and language filters"
    )
    group.add_argument(
        "--extract-timeout", type=float, default=e.timeout_s, metavar="SECONDS",
        help=f"wall-clock limit per page; a page over it is rejected as extract_timeout "
        f"(default {e.timeout_s:g})",
    )
    group.add_argument(
        "--max-html-chars", type=int, default=e.max_html_chars, metavar="N",
        help="longer pages are rejected as too_large without parsing "
        f"(default {e.max_html_chars:,})",
    )
    group.add_argument(
        "--extract-memory-mb", type=int, default=e.memory_headroom_mb, metavar="MB",
        help="memory the extraction worker may grow by before a page becomes extract_error; "
        f"0 = no cap (default {e.memory_headroom_mb})",
    )
    group.add_argument(
        "--readability", choices=READABILITY_MODES, default=e.readability,
        help="when readability-lxml gives a second opinion on trafilatura's text: "
        f"auto = when trafilatura's text looks doubtful (default {e.readability})",
    )
    group.add_argument(
        "--second-opinion-share", type=float, default=e.second_opinion_share, metavar="SHARE",
        help="with --readability auto: ask readability when trafilatura keeps less than this "
        f"share of the page's visible text; lower is faster (default {e.second_opinion_share:g})",
    )
    group.add_argument(
        "--min-words", type=int, default=c.min_words, metavar="N",
        help=f"documents with fewer words are rejected as too_short (default {c.min_words}, "
        "about 128 GPT-2 tokens)",
    )
    group.add_argument(
        "--lang", default=c.lang, metavar="CODE",
        help=f"keep documents in this language (langdetect code; default {c.lang})",
    )
    group.add_argument(
        "--lang-threshold", type=float, default=c.lang_threshold, metavar="P",
        help=f"minimum langdetect probability for --lang (default {c.lang_threshold:g})",
    )
    return group


def _bad(option: str, value: object, problem: str) -> ValueError:
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return ValueError(f"{option} {shown}: {problem}")


def _supported_languages() -> set[str] | None:
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY
    except ImportError:  # pragma: no cover - langdetect is a dependency
        return None
    try:
        return set(os.listdir(PROFILES_DIRECTORY))
    except OSError:  # pragma: no cover
        return None


def extract_configs(args: argparse.Namespace) -> tuple[ExtractConfig, CleanConfig]:
    """The configs the parsed options describe; ValueError (one line, naming the option)."""
    e, c = EXTRACT_DEFAULTS, CLEAN_DEFAULTS
    timeout = getattr(args, "extract_timeout", e.timeout_s)
    max_html = getattr(args, "max_html_chars", e.max_html_chars)
    memory = getattr(args, "extract_memory_mb", e.memory_headroom_mb)
    readability = getattr(args, "readability", e.readability)
    share = getattr(args, "second_opinion_share", e.second_opinion_share)
    min_words = getattr(args, "min_words", c.min_words)
    lang = getattr(args, "lang", c.lang)
    threshold = getattr(args, "lang_threshold", c.lang_threshold)

    if not timeout > 0 or timeout != timeout or timeout == float("inf"):
        raise _bad("--extract-timeout", timeout, "must be more than 0 (seconds)")
    if max_html <= 0:
        raise _bad("--max-html-chars", max_html, "must be more than 0")
    if memory < 0:
        raise _bad("--extract-memory-mb", memory, "must be 0 (no cap) or more")
    if 0 < memory < 256:
        raise _bad("--extract-memory-mb", memory, "too small for the extractors; use 256 or more")
    if readability not in READABILITY_MODES:
        raise _bad("--readability", readability, f"must be one of {', '.join(READABILITY_MODES)}")
    if not 0.0 <= share <= 1.0:
        raise _bad("--second-opinion-share", share, "must be between 0 and 1")
    if min_words < 0:
        raise _bad("--min-words", min_words, "must be 0 or more")
    lang_norm = (lang or "").strip().lower()
    if not _LANG_CODE.match(lang_norm):
        raise _bad("--lang", lang or "''", "not a language code (e.g. en, de, zh-cn)")
    supported = _supported_languages()
    if supported is not None and lang_norm not in supported:
        raise _bad("--lang", lang, "not a language langdetect knows")
    if not 0.0 <= threshold <= 1.0:
        raise _bad("--lang-threshold", threshold, "must be between 0 and 1")

    extract = dataclasses.replace(
        e,
        timeout_s=float(timeout),
        max_html_chars=int(max_html),
        memory_headroom_mb=int(memory),
        readability=readability,
        second_opinion_share=float(share),
    )
    clean = dataclasses.replace(
        c, min_words=int(min_words), lang=lang_norm, lang_threshold=float(threshold)
    )
    return extract, clean


def run_extract_file(path: str, url: str | None = None) -> str:
    """`webtext extract FILE.html [--url URL]`: the page's main text ("" when none).

    A missing or unreadable file raises FileNotFoundError / ValueError with a
    one-line message that names the file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not an HTML file")
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"--url {url}: not an http(s) URL")
    try:
        return extract_file(path, url)
    except PermissionError:
        raise ValueError(f"{path}: cannot read (permission denied)") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


__all__ = ["READABILITY_MODES", "add_extract_options", "extract_configs", "run_extract_file"]
