"""HTML -> main text: trafilatura first, readability-lxml as a second opinion when it is needed.

The rule (measured in docs/extraction.md):

1. Parse the page once with lxml. Read the metadata (title, date, sitename,
   author) with trafilatura's own metadata extractor on that tree.
2. Strip what no extractor reads (script, style, svg, iframes, comments).
   Before readability runs, whitespace runs in text nodes are collapsed (not
   inside <pre>): no extracted word changes and readability-lxml gets ~2x
   faster (its text-length helper runs backtracking regexes over every run).
3. trafilatura (recall-leaning, comments off) gives the primary text, rendered
   as plain lines: one line per block, no Markdown markers (`|`, `- `, `#`).
4. Second opinion only when trafilatura's text looks doubtful: shorter than
   `second_opinion_min_chars`, or less than `second_opinion_share` of the
   page's visible text. Then readability-lxml runs on the same tree and:
   - if readability's text contains trafilatura's (token coverage >=
     `superset_coverage`) and is `superset_ratio` times longer, trafilatura
     truncated the article: readability's text is used ("readability");
   - otherwise the two are aligned line by line: trafilatura's lines before
     the first and after the last line readability confirms are dropped
     (header/footer furniture that readability's scoring left out), and
     readability's lines that trafilatura lacks are added ("merged"; "agree"
     when nothing changed).
5. Page furniture is removed from the chosen text: a leading line that
   repeats the page title (the title has its own column), datelines at the
   top or bottom (the date has its own column), and short call-to-action /
   legal lines ("Click here", "Subscribe", "All rights reserved", cookies).

Nothing here is about particular sites; every threshold is an `ExtractConfig`
field.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

# Heavy third-party imports happen on first use (see _libs), so importing the
# package (e.g. for the CLI's --help, or the Beam graph on the launcher) stays cheap.

STAGE = "extract"


@dataclass(frozen=True, slots=True)
class ExtractConfig:
    """Every threshold of the extract stage. Picklable; pass it to Beam DoFns as is."""

    # --- protection (enforced by extract_record / ExtractWorker) ---
    max_html_chars: int = 5_000_000  # longer pages are rejected as too_large before parsing
    timeout_s: float = 5.0  # wall-clock limit per page inside the worker process
    memory_headroom_mb: int = 2048  # address space the worker may grow by (RLIMIT_AS); 0 = no cap
    isolate: bool = True  # run extraction in a killable worker process
    # multiprocessing start method for the worker; spawn is safe in a multi-threaded parent
    start_method: str = "spawn"
    startup_timeout_s: float = 120.0  # time a new worker may take to import and warm up
    # --- second opinion (readability-lxml) ---
    readability: str = "auto"  # "auto" (when doubtful), "always", "never"
    second_opinion_min_chars: int = 1000  # trafilatura text shorter than this (non-space chars)
    second_opinion_share: float = 0.5  # ... or below this share of the page's visible text
    superset_coverage: float = 0.95  # readability covers this share of trafilatura's tokens
    superset_ratio: float = 1.5  # ... and is this many times longer: use readability
    confirm_coverage: float = 0.9  # a trafilatura line readability "confirms" (token coverage)
    add_coverage: float = 0.5  # a readability line below this coverage by the kept span is added
    # --- page furniture ---
    strip_furniture: bool = True
    furniture_edge_lines: int = 3  # title/dateline checks look at this many lines at each end
    cta_max_words: int = 20  # call-to-action / legal lines at most this long are dropped
    # --- trafilatura ---
    favor_recall: bool = True
    include_tables: bool = True
    # skip trafilatura's own fallbacks (its readability fork, jusText): same F1 here, 20% faster
    trafilatura_fast: bool = True
    # --- Wikipedia (checked on the final URL before any parsing) ---
    wikipedia_mirrors: tuple[str, ...] | None = None  # None: record.WIKIPEDIA_MIRRORS


DEFAULT_CONFIG = ExtractConfig()


@dataclass(slots=True)
class Extraction:
    """What extraction found on one page (strings are "" when unknown)."""

    text: str = ""
    extractor: str = ""  # trafilatura | readability | merged | agree | "" (nothing found)
    page_title: str = ""
    published: str = ""  # YYYY-MM-DD, from trafilatura/htmldate
    sitename: str = ""
    author: str = ""
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------
# lazy library handles


class _Libs:
    loaded = False
    local = threading.local()  # lxml parsers must not be shared between threads


def _libs():
    if not _Libs.loaded:
        import lxml.etree
        import lxml.html
        import trafilatura
        from readability import Document

        _Libs.etree = lxml.etree
        _Libs.html = lxml.html
        _Libs.trafilatura = trafilatura
        _Libs.Document = Document
        _Libs.loaded = True
    return _Libs


def _parser():
    parser = getattr(_Libs.local, "parser", None)
    if parser is None:
        parser = _libs().html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
        _Libs.local.parser = parser
    return parser


# --------------------------------------------------------------------------
# parsing and preparing the tree

_STRIP_TAGS = ("script", "style", "noscript", "svg", "template", "iframe", "object", "embed")
_KEEP_WHITESPACE = frozenset({"pre", "textarea", "code", "listing", "xmp", "plaintext"})
_WS_RUN = re.compile(r"[ \t\r\n\f\v]{2,}|[\t\r\f\v\n]")


def _collapse(match: re.Match) -> str:
    return "\n" if "\n" in match.group() else " "


def parse_html(html: str | bytes):
    """An lxml tree of the page (str or UTF-8 bytes); None when there is nothing to parse."""
    libs = _libs()
    data = html if isinstance(html, bytes) else html.encode("utf-8", "replace")
    if not data.strip():
        return None
    try:
        return libs.html.document_fromstring(data, parser=_parser())
    except (libs.etree.ParserError, ValueError):
        return None


def strip_non_content(tree, keep_json_ld: bool = False) -> None:
    """In place: drop elements no extractor reads (scripts, styles, svg, frames).

    With `keep_json_ld`, <script type="application/ld+json"> stays (the
    metadata extractor reads it; call again without it afterwards).
    """
    etree = _libs().etree
    if keep_json_ld:
        for el in list(tree.iter("script")):
            if (el.get("type") or "").strip().lower() != "application/ld+json":
                el.drop_tree()  # keeps the tail text
        etree.strip_elements(tree, *(t for t in _STRIP_TAGS if t != "script"), with_tail=False)
    else:
        etree.strip_elements(tree, *_STRIP_TAGS, with_tail=False)


def _has_ws_run(text: str) -> bool:
    return "\n" in text or "  " in text or "\t" in text or "\r" in text


def collapse_whitespace(tree) -> None:
    """In place: collapse whitespace runs in text nodes, except inside <pre> and friends.

    No extracted word changes; readability-lxml gets about twice as fast,
    because its text-length helper runs backtracking regexes over every
    whitespace run (long indentation runs make them quadratic).
    """
    sub = _WS_RUN.sub
    keep: set = set()
    for el in tree.iter(*_KEEP_WHITESPACE):
        keep.update(el.iter())
    for el in tree.iter():
        text, tail = el.text, el.tail
        if text and _has_ws_run(text) and (not keep or el not in keep):
            el.text = sub(_collapse, text)
        if tail and _has_ws_run(tail) and (not keep or el.getparent() not in keep):
            el.tail = sub(_collapse, tail)


def nonspace_len(text: str) -> int:
    """Characters that are not whitespace: a length that works for CJK text too."""
    return len(text) - sum(text.count(c) for c in " \n\t")


# --------------------------------------------------------------------------
# rendering: both extractors' output to the same plain-text shape


_TEI_BLOCKS = frozenset(
    "p head item row quote code list table div lb graphic label fw note ab".split()
)
_HTML_BLOCKS = frozenset(
    "p div br li ul ol dl dt dd h1 h2 h3 h4 h5 h6 table tr blockquote pre section article header "
    "footer figure figcaption hr main aside nav address caption details summary".split()
)
_HTML_CELLS = frozenset({"td", "th"})


def _render(root, blocks: frozenset, cells: frozenset) -> str:
    parts: list[str] = []
    append = parts.append

    def walk(el) -> None:
        tag = el.tag.lower() if isinstance(el.tag, str) else None
        if tag in blocks:
            append("\n")
        elif tag in cells:
            append(" ")
        if el.text and tag is not None:
            append(el.text)
        for child in el:
            walk(child)
        if tag in blocks:
            append("\n")
        if el.tail:
            append(el.tail)

    walk(root)
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


def render_tei(body) -> str:
    """trafilatura's XML body as plain lines (no Markdown table bars or list dashes)."""
    if body is None:
        return ""
    return _render(body, _TEI_BLOCKS, frozenset({"cell"}))


def render_html(fragment) -> str:
    """An HTML element (readability's summary) as plain lines, cells joined by spaces."""
    return _render(fragment, _HTML_BLOCKS, _HTML_CELLS)


# --------------------------------------------------------------------------
# the two extractors


def trafilatura_text(tree, url: str | None, config: ExtractConfig) -> str:
    """trafilatura on a parsed tree (it works on its own copy); "" when it finds nothing."""
    libs = _libs()
    doc = libs.trafilatura.bare_extraction(
        tree,
        url=url,
        include_comments=False,
        include_tables=config.include_tables,
        favor_recall=config.favor_recall,
        fast=config.trafilatura_fast,
        with_metadata=False,
    )
    return render_tei(doc.body) if doc is not None else ""


def _readability_class():
    """readability's Document with a leaner `_parse` (same text; ~20% faster, measured).

    readability's own `_parse` drops [hidden] and display:none elements, then
    runs lxml_html_clean's Cleaner (scripts, styles, comments, <link>,
    javascript: links and on* attributes; about a quarter of its time), then
    resolves links. By the time readability runs here the tree has no
    scripts, styles, comments or processing instructions left, and nothing
    the Cleaner still touches (attributes, <link>) carries text. So this
    `_parse` deep-copies the input (as the Cleaner did: readability's second,
    non-ruthless pass starts again from the untouched input) and does the
    rest. tests/test_extract.py checks the text is the same as
    readability-lxml's own on real pages.
    """
    if _Libs.__dict__.get("readability_class") is None:
        import copy

        base = _libs().Document
        try:
            from readability.readability import REGEXES

            display_none = REGEXES["displayNoneRe"]
        except (ImportError, KeyError):  # pragma: no cover - readability changed
            _Libs.readability_class = base
            return base

        class LeanReadability(base):
            def _parse(self, input):  # noqa: A002 - readability's own signature
                if isinstance(input, str):
                    return super()._parse(input)
                doc = copy.deepcopy(input)
                for elem in doc.xpath("//*[@hidden]"):
                    elem.drop_tree()
                for elem in doc.xpath("//*[@style]"):
                    if display_none.search(elem.get("style")):
                        elem.drop_tree()
                doc.resolve_base_href(handle_failures=self.handle_failures)
                return doc

        _Libs.readability_class = LeanReadability
    return _Libs.readability_class


def readability_text(tree) -> str:
    """readability-lxml on the parsed tree (no serialise/re-parse round trip)."""
    summary = _readability_class()(tree).summary(html_partial=True)
    if not summary or not summary.strip():
        return ""
    return render_html(_libs().html.fromstring(summary))


def page_metadata(tree, url: str | None, max_date: str | None) -> dict[str, str]:
    """title, published, sitename, author, as trafilatura's metadata extractor finds them.

    `max_date` (YYYY-MM-DD; the fetch date in the pipeline) bounds the dates
    htmldate accepts, so the result does not depend on the day the job runs.
    """
    params = {
        "original_date": True,
        "extensive_search": False,
        "max_date": max_date or date.today().isoformat(),
    }
    meta = _lean_metadata(tree, url, params)
    return {
        "page_title": _one_line(meta.title),
        "published": meta.date or "",
        "sitename": _one_line(meta.sitename),
        "author": _one_line(meta.author),
    }


def _lean_metadata(tree, url, params):
    """trafilatura.extract_metadata's steps for the four fields we keep, in its order.

    The public function also extracts categories, tags and the license (a
    third of its time, measured on the dev pages) and normalises the page's
    canonical URL; we need none of them. tests/test_extract.py checks the
    fields match `trafilatura.extract_metadata` on real pages; if trafilatura's
    internals move, this falls back to the public function.
    """
    try:
        from trafilatura import metadata as m

        md = m.examine_meta(tree)
        if md.author and " " not in md.author:
            md.author = None
        with contextlib.suppress(Exception):  # as trafilatura does: bad JSON-LD is ignored
            md = m.extract_meta_json(tree, md)
        if not md.title:
            md.title = m.extract_title(tree)
        if not md.author:
            md.author = lean_author(tree)
        if not md.url:
            md.url = m.extract_url(tree, url)
        md.date = m.find_date(tree, **{**params, "url": md.url})
        if not md.sitename:
            md.sitename = m.extract_sitename(tree)
        if md.sitename:
            md.sitename = md.sitename.lstrip("@")
            if md.sitename and "." not in md.sitename and not md.sitename[0].isupper():
                md.sitename = md.sitename.title()
        elif md.url and (match := m.META_URL.match(md.url)):
            md.sitename = match[1]
        md.clean_and_trim()
        return md
    except (ImportError, AttributeError, TypeError):  # pragma: no cover - trafilatura changed
        return _libs().trafilatura.extract_metadata(tree, url, params)


# trafilatura.metadata.extract_author, without its deep copy of the page and its
# regex XPaths: those call back into Python's `re` once per element and attribute
# (lxml's EXSLT regexps), which made the author the bulk of the metadata step.
# The predicates below are trafilatura's AUTHOR_DISCARD_XPATHS and AUTHOR_XPATHS
# (trafilatura 2.x, xpaths.py) written out in Python; they read only tag names and
# attribute values, so one pass over the elements that carry such an attribute
# gives each XPath's result in document order. tests/test_extract.py checks
# lean_author against trafilatura's extract_author on real pages.
_AUTHOR_ATTR_NODES = None
_DISCARD_TAGS = frozenset({"a", "div", "section", "span"})
_DISCARD_ID = re.compile("^comments|comment-?list|ProductReviews")
_DISCARD_CLASS = re.compile(
    "^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|"
    "article-(?:share|support)|print|category|meta-date|meta-reviewer"
)
_AUTHOR0_TAGS = frozenset({"a", "address", "div", "link", "p", "span", "strong"})
_AUTHOR0_CLASS = re.compile("author-?name|AuthorName|authorName")
_AUTHOR1_TAGS = frozenset({"a", "div", "h3", "h4", "p", "span"})
_AUTHOR1_ID = re.compile("author|zuozhe|bianji|xiaobian")
_AUTHOR1_CLASS = re.compile(
    "author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name"
)
_AUTHOR2_ID = re.compile("[Aa]uthor")
_AUTHOR2_CLASS = re.compile("[Aa]uthor|screenname|writer|[Bb]yline")


def _author_attr_nodes(tree):
    global _AUTHOR_ATTR_NODES
    if _AUTHOR_ATTR_NODES is None:
        _AUTHOR_ATTR_NODES = _libs().etree.XPath(
            "//*[@class or @id or @rel or @itemprop or @data-testid or @data-component]"
            "|//author|//time|//figure"
        )
    return _AUTHOR_ATTR_NODES(tree)


def lean_author(tree) -> str | None:
    """trafilatura's extract_author(tree), the same result at a fraction of the cost."""
    from trafilatura import metadata as m

    if tree.getparent() is not None or tree.find(".//rel") is not None:
        # its first XPath also reads the text of <rel> children: leave that to trafilatura
        return m.extract_author(tree)
    discard: set = set()
    found: tuple[list, list, list] = ([], [], [])
    for el in _author_attr_nodes(tree):
        tag = el.tag
        get = el.get
        cls, id_ = get("class"), get("id")
        itemprop, component = get("itemprop") or "", get("data-component") or ""
        if (
            tag == "time"
            or tag == "figure"
            or (
                tag in _DISCARD_TAGS
                and el is not tree
                and (
                    id_ == "comments"
                    or cls in ("comments", "title", "date")
                    or (id_ is not None and _DISCARD_ID.search(id_))
                    or (cls is not None and _DISCARD_CLASS.search(cls))
                    or "Figure" in component
                )
            )
        ):
            discard.add(el)
        if tag == "author" or (
            tag in _AUTHOR0_TAGS
            and (
                get("rel") == "author"
                or id_ == "author"
                or cls == "author"
                or itemprop == "author name"
                or get("data-testid") in ("AuthorCard", "AuthorURL")
                or (cls is not None and _AUTHOR0_CLASS.search(cls))
            )
        ):
            found[0].append(el)
        if tag in _AUTHOR1_TAGS and (
            cls in ("byline", "username", "byl", "BBL")
            or "author" in itemprop
            or (id_ is not None and _AUTHOR1_ID.search(id_))
            or (cls is not None and _AUTHOR1_CLASS.search(cls))
        ):
            found[1].append(el)
        if (
            "Byline" in component
            or "author" in itemprop
            or (id_ is not None and _AUTHOR2_ID.search(id_))
            or (cls is not None and _AUTHOR2_CLASS.search(cls))
        ):
            found[2].append(el)
    holders: set | None = None  # elements with a discarded element inside
    for results in found:
        for el in results:
            if el in discard or any(a in discard for a in el.iterancestors()):
                continue  # pruned away with its discarded ancestor
            if holders is None:
                holders = {a for d in discard for a in d.iterancestors()}
            content = m.trim(" ".join(_pruned_itertext(el, discard, el in holders)))
            if content and 2 < len(content) < 120:
                return m.normalize_authors(None, content)
    return None


def _pruned_itertext(el, discard: set, has_discarded: bool):
    """el.itertext() as it reads once trafilatura has deleted the discarded elements."""
    if not has_discarded:
        return el.itertext()
    import copy

    from trafilatura.xml import delete_element

    clone = copy.deepcopy(el)
    inside = [c for o, c in zip(el.iter(), clone.iter(), strict=True) if o in discard]
    for c in inside:
        delete_element(c)
    return clone.itertext()


def _one_line(value) -> str:
    return " ".join(str(value).split()) if value else ""


# --------------------------------------------------------------------------
# combining


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def _bag(text: str) -> Counter:
    return Counter(text.lower().split())


def coverage(text: str, bag: Counter) -> float:
    """Share of `text`'s tokens (lowercase, whitespace-split) found in `bag` (multiset)."""
    tokens = Counter(text.lower().split())
    total = sum(tokens.values())
    if total == 0:
        return 1.0
    return sum(min(n, bag[t]) for t, n in tokens.items()) / total


def needs_second_opinion(primary: str, page_chars: int, config: ExtractConfig) -> bool:
    if config.readability == "always":
        return True
    if config.readability == "never":
        return False
    n = nonspace_len(primary)
    return n < config.second_opinion_min_chars or n < config.second_opinion_share * page_chars


def combine(primary: str, second: str, config: ExtractConfig) -> tuple[str, str]:
    """(text, extractor) from trafilatura's text and readability's text."""
    if not second.strip():
        return primary, "trafilatura"
    if not primary.strip():
        return second, "readability"
    second_bag = _bag(second)
    if coverage(primary, second_bag) >= config.superset_coverage and nonspace_len(
        second
    ) >= config.superset_ratio * nonspace_len(primary):
        return second, "readability"
    lines = _lines(primary)
    confirmed = [
        i for i, line in enumerate(lines) if coverage(line, second_bag) >= config.confirm_coverage
    ]
    if not confirmed:
        return primary, "trafilatura"
    span = lines[confirmed[0] : confirmed[-1] + 1]
    span_bag = _bag("\n".join(span))
    extra = [line for line in _lines(second) if coverage(line, span_bag) < config.add_coverage]
    if not extra and len(span) == len(lines):
        return primary, "agree"
    return "\n".join(_merge_in_order(span, extra, _lines(second))), "merged"


def _merge_in_order(span: list[str], extra: list[str], second: list[str]) -> list[str]:
    """Insert readability's extra lines into the kept span after the span line they follow."""
    if not extra:
        return span
    extra_set = set(extra)
    span_keys = {line: i for i, line in enumerate(span)}
    inserts: dict[int, list[str]] = {}
    anchor = -1
    for line in second:
        if line in extra_set:
            inserts.setdefault(anchor, []).append(line)
        elif line in span_keys:
            anchor = span_keys[line]
    out = list(inserts.get(-1, []))
    for i, line in enumerate(span):
        out.append(line)
        out.extend(inserts.get(i, []))
    return out


# --------------------------------------------------------------------------
# page furniture

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE_TOKEN = re.compile(
    r"\d{1,4}[-./]\d{1,2}[-./]\d{1,4}|\d{1,2}:\d{2}(?::\d{2})?|" + _MONTH + r"|"
    r"\d{1,2}(?:st|nd|rd|th)?,?|\d{4},?|a\.?m\.?|p\.?m\.?|am|pm|utc|gmt|[ecmp][sd]t|"
    r"mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:rs(?:day)?)?|fri(?:day)?|"
    r"sat(?:urday)?|sun(?:day)?|posted|published|updated|last|modified|on|at|by|ago|"
    r"hours?|minutes?|days?|[-–—|/•·,:]",
    re.IGNORECASE,
)
_CTA = re.compile(
    r"click here|subscribe|sign up|newsletter|follow (?:us|me|him|her|them) on|"
    r"all rights reserved|copyright|©|\bcookies?\b|privacy policy|terms of (?:use|service)|"
    r"javascript|^advertisement$|^read more\b|^share (?:this|on)\b|"
    r"^related(?: articles| stories| posts)?:?$|^comments?$",
    re.IGNORECASE,
)


def is_dateline(line: str, max_words: int = 12, min_share: float = 0.6) -> bool:
    """A short line that is mostly a date/time stamp ("Updated at 1:23 p.m.", "2017-03-10")."""
    tokens = line.split()
    if not tokens or len(tokens) > max_words or not any(c.isdigit() for c in line):
        return False
    hits = sum(1 for t in tokens if _DATE_TOKEN.fullmatch(t.strip("()[],")))
    return hits / len(tokens) >= min_share


def is_title_line(line: str, title: str) -> bool:
    """The line repeats the page title (exactly, as a part of it, or with >= 80% token F1)."""
    if not title:
        return False
    a, b = line.strip().lower(), title.strip().lower()
    if len(a) < 10:
        return False
    if a == b or (len(a) >= 20 and (a in b or b in a)):
        return True
    ta, tb = Counter(a.split()), Counter(b.split())
    common = sum((ta & tb).values())
    if not common:
        return False
    p, r = common / sum(ta.values()), common / sum(tb.values())
    return 2 * p * r / (p + r) >= 0.8


def is_call_to_action(line: str, max_words: int) -> bool:
    return len(line.split()) <= max_words and _CTA.search(line) is not None


def strip_furniture(text: str, title: str, config: ExtractConfig) -> str:
    if not config.strip_furniture:
        return text
    lines = _lines(text)
    n, edge = len(lines), config.furniture_edge_lines
    kept = []
    for i, line in enumerate(lines):
        if i < edge and is_title_line(line, title):
            continue
        if (i < edge or i >= n - edge) and is_dateline(line):
            continue
        if is_call_to_action(line, config.cta_max_words):
            continue
        kept.append(line)
    return "\n".join(kept)


# --------------------------------------------------------------------------
# the whole extraction, in this process


def extract_page(
    html: str | bytes,
    url: str | None = None,
    config: ExtractConfig = DEFAULT_CONFIG,
    max_date: str | None = None,
    profile: bool = False,
) -> Extraction:
    """Extract one page in this process (no time limit; see ExtractWorker for that).

    Raises whatever the libraries raise when both extractors fail; returns an
    Extraction with text "" when the page simply has no main text.
    """
    import time

    clock = time.perf_counter
    timings: dict[str, float] = {}
    t0 = clock()
    tree = parse_html(html)
    if tree is None:
        return Extraction()
    strip_non_content(tree, keep_json_ld=True)
    if profile:
        timings["parse"] = clock() - t0
        t0 = clock()
    meta = page_metadata(tree, url, max_date)
    if profile:
        timings["metadata"] = clock() - t0
        t0 = clock()
    strip_non_content(tree)
    body = tree.find("body")
    page_chars = nonspace_len((body if body is not None else tree).text_content())
    if profile:
        timings["prepare"] = clock() - t0
        t0 = clock()
    errors: list[BaseException] = []
    try:
        primary = trafilatura_text(tree, url, config)
    except MemoryError:
        raise
    except Exception as err:  # one extractor failing is not the page failing
        errors.append(err)
        primary = ""
    primary = strip_furniture(primary, meta["page_title"], config)
    if profile:
        timings["trafilatura"] = clock() - t0
        t0 = clock()
    text, extractor = primary, "trafilatura" if primary else ""
    if errors or needs_second_opinion(primary, page_chars, config):
        try:
            collapse_whitespace(tree)
            second = strip_furniture(readability_text(tree), meta["page_title"], config)
        except MemoryError:
            raise
        except Exception as err:
            if errors:
                raise errors[0] from err
            second = ""
        if profile:
            timings["readability"] = clock() - t0
            t0 = clock()
        text, extractor = combine(primary, second, config)
        text = strip_furniture(text, meta["page_title"], config)
        if not text:
            extractor = ""
        if profile:
            timings["combine"] = clock() - t0
    return Extraction(text=text, extractor=extractor, timings=timings, **meta)


def extract_text(html: str, url: str | None = None) -> str:
    """The shipped extraction of one page: its main text, "" when nothing is extracted.

    Exactly what the pipeline puts in a document's `text` before cleaning
    (default ExtractConfig), run in this process.
    """
    return extract_page(html, url).text


_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)


def read_html_file(path) -> str:
    """A saved page as text: BOM, UTF-8, the page's <meta charset>, then a detector's guess."""
    import codecs

    with open(path, "rb") as handle:
        data = handle.read()
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"), "replace")
        except LookupError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return str(best) if best is not None else data.decode("cp1252", "replace")


def extract_file(path, url: str | None = None) -> str:
    """`webtext extract FILE.html [--url URL]`: the same text extract_text gives the pipeline."""
    return extract_text(read_html_file(path), url)
