"""The build report (OUT/report/index.html + build.json) and the dataset card (OUT/README.md).

Statistics are computed by streaming the corpus shards batch by batch and
reading only the small columns they need (never ``text``), so the report stays
cheap on a 40 GB corpus: memory grows only with the number of distinct domains,
subreddits and months.

The page is one self-contained file: inline CSS and inline SVG charts, no
script, no external file or font, so it opens from disk anywhere. Later stages
add their own sections (the training stage adds model validation) with
:func:`add_report_section`, which re-renders the page from build.json without
reading the shards again.

Library layer: no Beam import; local files only.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from webtext_pipeline.manifest import balance_funnel, human_bytes
from webtext_pipeline.records import DOCS_SCHEMA

REPORT_DIR = "report"
BUILD_JSON = "build.json"
INDEX_HTML = "index.html"
SECTIONS_DIR = "sections"
CARD_NAME = "README.md"
REPORT_VERSION = "1"
TOP_N = 25

# Only these columns are read for the statistics; ``text`` never is.
STATS_COLUMNS = (
    "split", "domain", "subreddits", "n_words", "n_chars", "lang", "lang_score",
    "created_utc", "dup_cluster_size", "reddit_score", "extractor",
)

COLUMN_DOCS: dict[str, str] = {
    "id": "stable id: 16 hex digits of the sha1 of the normalized URL",
    "url": "the URL as linked from Reddit",
    "final_url": "the URL after redirects, as fetched",
    "domain": "registered domain of the URL (eTLD+1)",
    "title": "title of the highest-scored Reddit submission that linked the URL",
    "text": "the extracted, cleaned main text of the page",
    "reddit_score": "karma: the highest score among the submissions linking the URL",
    "reddit_posts": "number of submissions that linked the URL",
    "subreddits": "subreddits the URL was posted in (sorted, distinct)",
    "created_utc": "time of the first submission, seconds since 1970-01-01 UTC",
    "fetched_at": "when the page was fetched (ISO-8601 UTC, from the WARC record)",
    "http_status": "HTTP status of the final response",
    "extractor": "which extractor produced the text",
    "page_title": "the page's own title (from its HTML metadata)",
    "published": "publication date from the page metadata, if any",
    "sitename": "site name from the page metadata, if any",
    "author": "author from the page metadata, if any",
    "lang": "detected language code",
    "lang_score": "language detector confidence, 0–1",
    "n_chars": "characters in text",
    "n_words": "whitespace-separated words in text",
    "dup_cluster": "id of the near-duplicate cluster the document represents",
    "dup_cluster_size": "how many fetched documents were in that cluster (1 = unique)",
    "split": "train or val, from a hash of id (stable across runs)",
}

PALETTE = ("#e4572e", "#f3a712", "#a8c686", "#669bbc", "#b07aa1", "#9c755f", "#bab0ac")
KEPT = "#29335c"
BAR = "#3f6ea6"


class ReportError(ValueError):
    """The report cannot be made (no shards, no build.json to add a section to)."""


# -- statistics -----------------------------------------------------------------------------

def docs_files(path: str) -> list[str]:
    """The shards to read: a .parquet file, a folder of them, or a build folder with docs/."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(os.path.join(path, "docs")):
        path = os.path.join(path, "docs")
    if not os.path.isdir(path):
        raise ReportError(f"{path}: no such file or folder")
    files = sorted(
        os.path.join(path, name) for name in os.listdir(path)
        if name.endswith(".parquet") and not name.startswith((".", "_"))
    )
    if not files:
        raise ReportError(f"{path}: no .parquet files")
    return files


def _top(counter: Counter, n: int = TOP_N) -> list[list]:
    return [[k, v] for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _update(counter: Counter, array: pa.Array) -> None:
    for item in pc.value_counts(array).to_pylist():
        counter[item["values"]] += item["counts"]


def _log2_bins(array: pa.Array, counter: Counter, ceil: bool = False) -> None:
    """Count values by power-of-two bin: floor(log2 n) (0 for n ≤ 1), or ceil for sizes."""
    logs = pc.log2(pc.cast(pc.max_element_wise(array, 1), pa.float64()))
    _update(counter, pc.cast(pc.ceil(logs) if ceil else pc.floor(logs), pa.int64()))


def _bins_floor(counter: Counter) -> list[dict]:
    """[2^k, 2^(k+1)) bins from lowest to highest non-empty, empty ones in between kept."""
    if not counter:
        return []
    lo, hi = min(counter), max(counter)
    return [{"lo": 0 if k == 0 else 2**k, "hi": 2 ** (k + 1) - 1, "count": counter.get(k, 0)}
            for k in range(lo, hi + 1)]


def _bins_ceil(counter: Counter) -> list[dict]:
    """(2^(k-1), 2^k] bins: 1, 2, 3–4, 5–8, … (cluster sizes)."""
    if not counter:
        return []
    return [{"lo": 1 if k == 0 else 2 ** (k - 1) + 1, "hi": 2**k, "count": counter.get(k, 0)}
            for k in range(0, max(counter) + 1)]


def _months_between(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def corpus_stats(path: str, batch_size: int = 65536) -> dict:
    """Statistics of the corpus at ``path`` (a shard, docs/ or the build folder).

    Streams each file batch by batch, reading only :data:`STATS_COLUMNS` that exist.
    Every number is exact; lists are in a fixed order, so the result is deterministic.
    """
    files = docs_files(path)
    rows = size = words = chars = 0
    words_min: int | None = None
    words_max = 0
    splits: Counter = Counter()
    domains: Counter = Counter()
    subreddits: Counter = Counter()
    langs: Counter = Counter()
    extractors: Counter = Counter()
    months: Counter = Counter()
    word_bins: Counter = Counter()
    score_bins: Counter = Counter()
    dup_bins: Counter = Counter()
    lang_bins: Counter = Counter()
    duplicates_removed = 0
    for file in files:
        size += os.path.getsize(file)
        try:
            parquet = pq.ParquetFile(file)
        except Exception as exc:
            raise ReportError(f"{file}: not a readable Parquet file ({exc})") from None
        present = set(parquet.schema_arrow.names)
        columns = [c for c in STATS_COLUMNS if c in present]
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            rows += batch.num_rows
            col = {name: batch.column(name) for name in columns}
            if "split" in col:
                _update(splits, col["split"])
            if "domain" in col:
                _update(domains, col["domain"])
            if "subreddits" in col:
                _update(subreddits, pc.list_flatten(col["subreddits"]))
            if "lang" in col:
                _update(langs, col["lang"])
            if "extractor" in col:
                _update(extractors, col["extractor"])
            if "n_words" in col and batch.num_rows:
                n_words = col["n_words"]
                words += pc.sum(n_words).as_py() or 0
                low, high = pc.min_max(n_words).values()
                words_min = low.as_py() if words_min is None else min(words_min, low.as_py())
                words_max = max(words_max, high.as_py())
                _log2_bins(n_words, word_bins)
            if "n_chars" in col:
                chars += pc.sum(col["n_chars"]).as_py() or 0
            if "reddit_score" in col and batch.num_rows:
                _log2_bins(col["reddit_score"], score_bins)
            if "dup_cluster_size" in col and batch.num_rows:
                sizes = col["dup_cluster_size"]
                _log2_bins(sizes, dup_bins, ceil=True)
                duplicates_removed += (pc.sum(sizes).as_py() or 0) - batch.num_rows
            if "lang_score" in col and batch.num_rows:
                # + 1e-9: 0.57 * 100 is 56.999…; a score on a bin edge belongs to the bin above
                scaled = pc.floor(pc.add(pc.multiply(col["lang_score"], 100.0), 1e-9))
                clipped = pc.min_element_wise(pc.max_element_wise(scaled, 0.0), 99.0)
                _update(lang_bins, pc.cast(clipped, pa.int64()))
            if "created_utc" in col and batch.num_rows:
                stamps = pc.cast(col["created_utc"], pa.timestamp("s"))
                _update(months, pc.strftime(stamps, format="%Y-%m"))
    month_list = _months_between(min(months), max(months)) if months else []
    return {
        "files": len(files),
        "rows": rows,
        "bytes": size,
        "splits": dict(sorted(splits.items())),
        "words": {"total": words, "mean": round(words / rows, 2) if rows else 0.0,
                  "min": words_min or 0, "max": words_max},
        "chars": {"total": chars},
        "n_words_hist": _bins_floor(word_bins),
        "reddit_score_hist": _bins_floor(score_bins),
        "dup_cluster_size_hist": _bins_ceil(dup_bins),
        "duplicates_removed": duplicates_removed,
        "lang_score_hist": [{"lo": k / 100, "hi": (k + 1) / 100, "count": lang_bins.get(k, 0)}
                            for k in range(100)] if lang_bins else [],
        "langs": _top(langs, 10),
        "extractors": _top(extractors, 10),
        "domains": {"distinct": len(domains), "top": _top(domains)},
        "subreddits": {"distinct": len(subreddits), "top": _top(subreddits)},
        "months": [[m, months.get(m, 0)] for m in month_list],
    }


def count_rejects(out_dir: str) -> dict[str, dict[str, int]]:
    """Reject rows per stage and reason from OUT/rejects/*.parquet (reads two columns only)."""
    folder = os.path.join(out_dir, "rejects")
    counts: dict[str, Counter] = {}
    if not os.path.isdir(folder):
        return {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".parquet"):
            continue
        parquet = pq.ParquetFile(os.path.join(folder, name))
        for batch in parquet.iter_batches(columns=["stage", "reason"]):
            for item in pc.value_counts(
                pc.binary_join_element_wise(batch.column("stage"), batch.column("reason"), "\0")
            ).to_pylist():
                stage, reason = item["values"].split("\0", 1)
                counts.setdefault(stage, Counter())[reason] += item["counts"]
    return {stage: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))
            for stage, c in sorted(counts.items())}


# -- SVG charts -----------------------------------------------------------------------------

esc = html.escape


def _fmt(n: float) -> str:
    """1234 → 1,234; 12345 → 12.3k; 1234567 → 1.23M; 2.5e9 → 2.5B (axes, bars, cards)."""
    n = float(n)
    for limit, divisor, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(n) >= limit:
            return f"{n / divisor:.3g}{suffix}"
    return f"{n:,.0f}" if n == int(n) else f"{n:.3g}"


def _nice_max(value: float, ticks: int = 4) -> tuple[float, float]:
    """A round axis maximum ≥ value and its tick step (1, 2, 2.5 or 5 × 10^k)."""
    if value <= 0:
        return 1.0, 1.0
    raw = value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if value >= 4 and step < 1:
        step = 1.0
    return math.ceil(value / step - 1e-9) * step, step


def _svg_open(width: int, height: int, label: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>')


def hbar_svg(items: Sequence[tuple[str, float]], label: str, width: int = 560,
             color: str = BAR) -> str:
    """Horizontal bars with the label on the left and the value on the right."""
    if not items:
        return _empty_svg(label, width)
    row, top = 18, 4
    label_w = min(220, 12 + 6.6 * max(len(str(k)) for k, _ in items))
    value_w = 56
    plot_w = width - label_w - value_w
    height = top * 2 + row * len(items)
    biggest = max(v for _, v in items) or 1
    parts = [_svg_open(width, height, label)]
    for i, (key, value) in enumerate(items):
        y = top + i * row
        w = max(1.0, plot_w * value / biggest) if value else 0
        text = str(key) if len(str(key)) <= 32 else str(key)[:31] + "…"
        parts.append(
            f'<text x="{label_w - 6:.0f}" y="{y + 13}" text-anchor="end">{esc(text)}</text>'
            f'<rect x="{label_w:.0f}" y="{y + 3}" width="{w:.1f}" height="{row - 5}" '
            f'fill="{color}"><title>{esc(str(key))}: {value:,}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" class="v">{_fmt(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _empty_svg(label: str, width: int) -> str:
    return (_svg_open(width, 40, label)
            + '<text x="10" y="24" class="v">no data</text></svg>')


def column_svg(items: Sequence[tuple[str, float]], label: str, x_title: str,
               width: int = 560, height: int = 230, tick_every: int = 1,
               color: str = BAR, log_y: bool = False) -> str:
    """Vertical bars (a histogram or a time series) with a value axis and gridlines.

    Only every ``tick_every``-th label is drawn (empty labels are skipped too); labels are
    turned 40° when they would overlap. ``log_y``: a log10(1 + n) scale, for counts that
    span orders of magnitude.
    """
    if not items or not any(v for _, v in items):
        return _empty_svg(label, width)
    shown = [i for i, (k, _) in enumerate(items) if k and i % tick_every == 0]
    longest = max((len(items[i][0]) for i in shown), default=1)
    left, right, top = 48, 10, 10
    slot = (width - left - right) / len(items)
    spacing = min((b - a for a, b in zip(shown, shown[1:], strict=False)), default=len(items))
    rotate = longest * 6.2 > spacing * slot - 6
    bottom = 34 + (int(4.3 * longest) if rotate else 8)
    height = max(height, top + bottom + 120)
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(v for _, v in items)
    if log_y:
        decades = max(1, math.ceil(math.log10(peak + 1)))
        y_top = math.log10(10**decades + 1)
        ticks = [10**d if d else 0 for d in range(decades + 1)]

        def scale(v: float) -> float:
            return math.log10(v + 1) / y_top
    else:
        y_max, step = _nice_max(peak)
        ticks = [t * step for t in range(int(round(y_max / step)) + 1)]

        def scale(v: float) -> float:
            return v / y_max
    gap = 1 if slot > 4 else 0
    parts = [_svg_open(width, height, label)]
    for value in ticks:
        y = top + plot_h - plot_h * scale(value)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="grid"/><text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" '
                     f'class="v">{_fmt(value)}</text>')
    for i, (key, value) in enumerate(items):
        x = left + i * slot
        h = plot_h * scale(value)
        if value:
            parts.append(f'<rect x="{x + gap / 2:.2f}" y="{top + plot_h - h:.2f}" '
                         f'width="{max(slot - gap, 0.6):.2f}" height="{max(h, 0.8):.2f}" '
                         f'fill="{color}"><title>{esc(key)}: {value:,}</title></rect>')
    for i in shown:
        cx, cy = left + (i + 0.5) * slot, top + plot_h + 13
        key = items[i][0]
        if rotate:
            parts.append(f'<text x="{cx + 3:.1f}" y="{cy:.1f}" text-anchor="end" class="v" '
                         f'transform="rotate(-40 {cx + 3:.1f} {cy:.1f})">{esc(key)}</text>')
        else:
            parts.append(f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="middle" '
                         f'class="v">{esc(key)}</text>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" '
                 f'y2="{top + plot_h}" class="axis"/>')
    scale_note = " (log scale)" if log_y else ""
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 5}" text-anchor="middle">'
                 f"{esc(x_title)}{scale_note}</text></svg>")
    return "".join(parts)


def _reasons(stage: Mapping) -> list[tuple[str, int]]:
    """The stage's rejects as (reason, n), biggest first (build.json stores them by name)."""
    return sorted(stage["rejects"].items(), key=lambda kv: (-kv[1], kv[0]))


def _segments(stage: Mapping, keep: int = 5) -> list[tuple[str, int]]:
    """The stage's rejects as (reason, n), the biggest ``keep`` and one "other" for the rest."""
    items = [(r, n) for r, n in _reasons(stage) if n]
    if len(items) > keep + 1:
        rest = items[keep:]
        items = items[:keep] + [(f"{len(rest)} other reasons", sum(n for _, n in rest))]
    return items


def funnel_svg(balance: Mapping, width: int = 960) -> str:
    """The funnel from links to documents: one bar per stage on one scale.

    Each bar is the stage's input: the dark part is what it passed on, the coloured parts
    what it dropped, by reason. The links stage (submissions → links) has its own chart,
    :func:`links_svg`, since its input is on another scale.
    """
    stages = [s for s in balance["stages"] if s["stage"] != "links"]
    label = "Funnel: links → documents"
    scale = max([balance["links"]] + [s["in"] for s in stages]) or 1
    left, right, bar_h = 90, 10, 26
    plot_w = width - left - right
    rows = []
    y = 8
    for stage in stages:
        rows.append((y, stage))
        y += bar_h + 8 + 16 * math.ceil(len(_segments(stage)) / 3) + 10
    height = y + bar_h + 16
    parts = [_svg_open(width, height, label)]
    for y, stage in rows:
        x = left
        kept_w = plot_w * stage["out"] / scale
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" class="b">'
                     f'{esc(stage["stage"])}</text>')
        parts.append(f'<rect x="{x}" y="{y}" width="{max(kept_w, 0):.1f}" height="{bar_h}" '
                     f'fill="{KEPT}"><title>{esc(stage["stage"])}: {stage["out"]:,} passed'
                     f"</title></rect>")
        x += kept_w
        segments = _segments(stage)
        for i, (reason, n) in enumerate(segments):
            w = plot_w * n / scale
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 0.8):.1f}" height="{bar_h}" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"><title>{esc(reason)}: {n:,}'
                         f"</title></rect>")
            x += w
        note = f'in {stage["in"]:,} → out {stage["out"]:,}'
        if stage["rejected"]:
            note += f' (−{stage["rejected"]:,}, {stage["rejected"] / max(stage["in"], 1):.1%})'
        inside = kept_w > 7.2 * len(note)
        parts.append(f'<text x="{left + 6 if inside else min(x + 6, width - 300):.1f}" '
                     f'y="{y + 17}" class="{"w" if inside else "v"}">{esc(note)}</text>')
        for i, (reason, n) in enumerate(segments):
            lx = left + (i % 3) * (plot_w / 3)
            ly = y + bar_h + 16 + 16 * (i // 3)
            parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"/><text x="{lx + 14:.1f}" '
                         f'y="{ly}" class="v">{esc(reason)} {n:,}</text>')
    y = height - bar_h - 8
    docs_w = plot_w * balance["documents"] / scale
    parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" class="b">documents'
                 f'</text><rect x="{left}" y="{y}" width="{docs_w:.1f}" height="{bar_h}" '
                 f'fill="{KEPT}"/><text x="{left + docs_w + 6:.1f}" y="{y + 17}" class="v">'
                 f'{balance["documents"]:,} of {balance["links"]:,} links '
                 f'({balance["documents"] / max(balance["links"], 1):.1%})</text></svg>')
    return "".join(parts)


def links_svg(balance: Mapping, width: int = 960) -> str:
    """Submissions read by the links stage: kept posts and each reject reason, one bar."""
    stage = next((s for s in balance["stages"] if s["stage"] == "links"), None)
    if stage is None:
        return ""
    segments = [("kept", stage.get("kept", stage["out"]))] + _segments(stage, keep=6)
    left, right, bar_h = 90, 10, 26
    plot_w = width - left - right
    total = stage["in"] or 1
    legend_rows = math.ceil(len(segments) / 3)
    height = 8 + bar_h + 10 + 16 * legend_rows + 8
    parts = [_svg_open(width, height, "Links stage: submissions → links"),
             f'<text x="{left - 8}" y="25" text-anchor="end" class="b">links</text>']
    x = left
    for i, (reason, n) in enumerate(segments):
        color = KEPT if i == 0 else PALETTE[(i - 1) % len(PALETTE)]
        w = plot_w * n / total
        parts.append(f'<rect x="{x:.1f}" y="8" width="{max(w, 0.8 if n else 0):.1f}" '
                     f'height="{bar_h}" fill="{color}"><title>{esc(reason)}: {n:,}</title>'
                     f"</rect>")
        x += w
        lx = left + (i % 3) * (plot_w / 3)
        ly = 8 + bar_h + 20 + 16 * (i // 3)
        parts.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{lx + 14:.1f}" y="{ly}" class="v">{esc(reason)} {n:,} '
                     f"({n / total:.1%})</text>")
    parts.append("</svg>")
    return "".join(parts)


# -- the page -------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#1d2433;margin:0;background:#f5f6f8}
main{max-width:1000px;margin:0 auto;padding:24px 28px 60px;background:#fff;
box-shadow:0 0 0 1px #e3e6eb}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:34px 0 8px;
border-bottom:1px solid #e3e6eb;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#5b6475;margin:0 0 16px}
nav{font-size:13px;margin:8px 0 4px}nav a{margin-right:12px;color:#3f6ea6}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:16px 0}
.card{border:1px solid #e3e6eb;border-radius:6px;padding:10px 12px}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
.ok{color:#1e7b34;font-weight:600}.bad{color:#b03a2e;font-weight:600}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:8px 28px}
.grid2 svg{width:100%;height:auto}
svg.chart{max-width:100%;height:auto;font-size:11px;overflow:visible}
svg text{fill:#1d2433}svg text.v{fill:#4a5366;font-size:10.5px}svg text.b{font-weight:600}
svg text.w{fill:#fff;font-size:11px}svg .grid{stroke:#eceef2}svg .axis{stroke:#8a92a3}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border-bottom:1px solid #eceef2;padding:3px 10px 3px 0;text-align:left;
vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f5f6f8;padding:8px 10px;overflow-x:auto;white-space:pre-wrap}
details{margin:6px 0}summary{cursor:pointer;color:#3f6ea6}
.note{color:#5b6475;font-size:12.5px}
"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _bin_label(b: Mapping, decimals: int = 0) -> str:
    if decimals:
        return f"{b['lo']:.{decimals}f}"
    return _fmt(b["lo"]) if b["lo"] == b["hi"] else f"{_fmt(b['lo'])}–{_fmt(b['hi'])}"


def _table(header: Sequence[str], rows: Iterable[Sequence], numeric: Iterable[int] = ()) -> str:
    numeric = set(numeric)
    head = "".join(f'<th{" class=n" if i in numeric else ""}>{esc(h)}</th>'
                   for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
            cells.append(f'<td{" class=n" if i in numeric else ""}>{esc(str(text))}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _funnel_section(balance: Mapping) -> str:
    status = "ok" if balance["balanced"] else "bad"
    parts = ['<section id="funnel"><h2>Funnel</h2>',
             f'<p class="{status}">{esc(balance["equation"])}</p>']
    links = balance.get("links_stage")
    if links:
        verdict = "balanced" if links["balanced"] else "NOT BALANCED"
        parts.append(
            "<h3>Submissions → links</h3>"
            f'<p class="note">Records read = posts kept + rejects: {links["records_read"]:,} = '
            f'{links["kept"]:,} + {links["rejected"]:,} ({verdict}); the kept posts name '
            f'{links["links"]:,} distinct links.</p>' + links_svg(balance))
    parts.append("<h3>Links → documents</h3>" + funnel_svg(balance))
    rows = []
    for s in balance["stages"]:
        rows.append((s["stage"], s["in"], s["out"], s["rejected"],
                     "yes" if s["balanced"] else "NO"))
    parts.append(_table(("stage", "in", "out", "rejected", "in = out + rejects"), rows,
                        (1, 2, 3)))
    for s in balance["stages"]:
        if s["rejects"]:
            parts.append(
                f"<details><summary>{esc(s['stage'])}: {len(s['rejects'])} reject reasons"
                "</summary>"
                + _table(("reason", "rows", "share of stage input"),
                         [(r, n, f"{n / max(s['in'], 1):.2%}") for r, n in _reasons(s)],
                         (1, 2))
                + "</details>")
    parts.append("</section>")
    return "".join(parts)


def _lang_bars(bins: Sequence[Mapping]) -> tuple[list[tuple[str, int]], float]:
    """The 0.01 language-score bins merged into at most 20 bars, from the lowest occupied 0.05."""
    counts = [b["count"] for b in bins]
    if not any(counts):
        return [], 0.05
    width = len(counts)
    first = next(i for i, n in enumerate(counts) if n)
    start = first - first % 5
    group = next(g for g in (1, 2, 5, 10) if (width - start) / g <= 20)
    bars = [(f"{(i / width):.2f}", sum(counts[i:i + group])) for i in range(start, width, group)]
    return bars, group / width


def _corpus_sections(stats: Mapping) -> str:
    s = stats
    words = [(_bin_label(b), b["count"]) for b in s["n_words_hist"]]
    months = [(m, n) for m, n in s["months"]]
    if len(months) > 24:
        # label each January (and the first month) so the axis reads in years
        years = max(1, math.ceil(len(months) / 12 / 16))
        months = [(m[:4] if (m.endswith("-01") and int(m[:4]) % years == 0) or i == 0 else "", n)
                  for i, (m, n) in enumerate(months)]
    months_svg = column_svg(months, "Documents by month of first Reddit post",
                            "month of the first post (UTC)", width=960, height=220,
                            tick_every=1 if len(months) > 24 else max(1, len(months) // 12))
    lang_items, lang_width = _lang_bars(s["lang_score_hist"])
    dup_items = [(_bin_label(b), b["count"]) for b in s["dup_cluster_size_hist"]]
    score_items = [(_bin_label(b), b["count"]) for b in s["reddit_score_hist"]]
    domains = s["domains"]
    subs = s["subreddits"]
    return (
        '<section id="lengths"><h2>Document lengths</h2>'
        f'<p class="note">Words per document (log₂ bins). {s["words"]["total"]:,} words in all; '
        f'mean {s["words"]["mean"]:,.0f}, shortest {s["words"]["min"]:,}, longest '
        f'{s["words"]["max"]:,}.</p>'
        + column_svg(words, "Documents by length in words", "words per document",
                     width=960, height=240)
        + "</section>"
        '<section id="sources"><h2>Where the text comes from</h2><div class="grid2"><div>'
        f'<h3>Top domains</h3><p class="note">{domains["distinct"]:,} distinct domains</p>'
        + hbar_svg([(k, v) for k, v in domains["top"]], "Top domains by documents", width=470)
        + f'</div><div><h3>Top subreddits</h3><p class="note">{subs["distinct"]:,} distinct '
        "subreddits (a document counts once in each subreddit it was posted in)</p>"
        + hbar_svg([(f"r/{k}", v) for k, v in subs["top"]], "Top subreddits by documents",
                   width=470, color="#e07a2f")
        + "</div></div></section>"
        '<section id="time"><h2>Posts by month</h2>'
        + months_svg + "</section>"
        '<section id="quality"><h2>Language, karma and duplicates</h2><div class="grid2"><div>'
        "<h3>Language detector confidence</h3>"
        + column_svg(lang_items, "Documents by language score",
                     f"lang_score (bins of {lang_width:.2f})", width=470, color="#5b8e7d",
                     tick_every=max(1, len(lang_items) // 10))
        + "<p class=note>Languages: "
        + esc(", ".join(f"{k} {v:,}" for k, v in s["langs"])) + "</p>"
        + "</div><div><h3>Near-duplicate cluster sizes</h3>"
        + column_svg(dup_items, "Documents by duplicate-cluster size",
                     "pages in the document's cluster, 1 = unique", width=470,
                     color="#b07aa1", log_y=True)
        + f'<p class="note">{s["duplicates_removed"]:,} near-duplicates were folded into the '
        "documents kept.</p>"
        + "</div><div><h3>Reddit karma</h3>"
        + column_svg(score_items, "Documents by karma", "reddit_score (log₂ bins)", width=470,
                     color="#e4572e", tick_every=1 if len(score_items) <= 10 else 2)
        + "</div><div><h3>Extractors</h3>"
        + hbar_svg([(k, v) for k, v in s["extractors"]], "Documents by extractor", width=470,
                   color="#669bbc")
        + "</div></div></section>"
    )


def _shards(files: int) -> str:
    return f"{files} Parquet shard{'' if files == 1 else 's'}"


def _overview(build: Mapping) -> str:
    stats, balance = build["stats"], build["funnel"]
    splits = stats["splits"]
    ok = balance["balanced"]
    cards = [
        (f"{stats['rows']:,}", "documents"),
        (_fmt(stats["words"]["total"]), "words"),
        (" / ".join(f"{n:,}" if stats["rows"] < 100_000 else _fmt(n)
                    for n in (splits.get("train", 0), splits.get("val", 0))),
         "train / val documents"),
        (human_bytes(stats["bytes"]), f"in {_shards(stats['files'])}"),
        (f"{balance['links']:,}", "links to fetch"),
        (f"{balance['documents'] / max(balance['links'], 1):.1%}", "of links became documents"),
        (f"{stats['domains']['distinct']:,}", "domains"),
        ("balanced" if ok else "NOT balanced", "links = documents + Σ rejects"),
    ]
    html_cards = "".join(
        f'<div class="card"><b class="{("ok" if ok else "bad") if i == 7 else ""}">{esc(v)}</b>'
        f"<span>{esc(k)}</span></div>" for i, (v, k) in enumerate(cards))
    return f'<div class="cards">{html_cards}</div>'


def _build_section(build: Mapping) -> str:
    parts = ['<section id="build"><h2>How it was built</h2>']
    command = build.get("command")
    if command:
        text = command if isinstance(command, str) else " ".join(command)
        parts.append(f"<pre>{esc(text)}</pre>")
    if build.get("built_at"):
        parts.append(f'<p class="note">built at {esc(build["built_at"])}</p>')
    if build.get("options"):
        parts.append("<details><summary>options</summary>" + _table(
            ("option", "value"),
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in sorted(build["options"].items())])
            + "</details>")
    if build.get("versions"):
        parts.append("<details><summary>package versions</summary>"
                     + _table(("package", "version"), sorted(build["versions"].items()))
                     + "</details>")
    parts.append("</section>")
    return "".join(parts)


def render_report(build: Mapping, sections: Sequence[tuple[str, str]] = ()) -> str:
    """The HTML page for a build.json dict, with extra (title, html fragment) sections."""
    nav = [("funnel", "Funnel"), ("lengths", "Lengths"), ("sources", "Domains & subreddits"),
           ("time", "Months"), ("quality", "Language, karma, duplicates")]
    extra = []
    for title, fragment in sections:
        stripped = fragment.lstrip()
        match = re.match(r'<section[^>]*\bid="([^"]+)"', stripped)
        if match:
            anchor = match.group(1)
            extra.append(stripped)
        else:
            anchor = _slug(title)
            extra.append(f'<section id="{anchor}"><h2>{esc(title)}</h2>{fragment}</section>')
        nav.append((anchor, title))
    nav.append(("build", "Build"))
    title = build.get("title") or "WebText build report"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1>"
        '<p class="sub">An open rebuild of WebText: pages linked from Reddit with karma, '
        "fetched, extracted, cleaned and deduplicated.</p>"
        + "<nav>" + "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t in nav) + "</nav>"
        + _overview(build) + _funnel_section(build["funnel"]) + _corpus_sections(build["stats"])
        + "".join(extra) + _build_section(build)
        + "</main></body></html>\n"
    )


# -- files ----------------------------------------------------------------------------------

def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)


def _section_path(out_dir: str, key: str) -> str:
    return os.path.join(out_dir, REPORT_DIR, SECTIONS_DIR, f"{_slug(key)}.html")


def _save_section(out_dir: str, title: str, fragment: str, key: str | None = None) -> str:
    path = _section_path(out_dir, key or title)
    _write_text(path, f"<!-- title: {title.replace('--', '—')} -->\n{fragment}")
    return path


def saved_sections(out_dir: str) -> list[tuple[str, str]]:
    """The extra sections stored in OUT/report/sections/, in file-name order."""
    folder = os.path.join(out_dir, REPORT_DIR, SECTIONS_DIR)
    if not os.path.isdir(folder):
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".html"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            first, _, body = handle.read().partition("\n")
        match = re.match(r"<!-- title: (.*) -->$", first)
        out.append((match.group(1) if match else name[:-5], body if match else first + body))
    return out


def _timings(funnel: Mapping) -> dict[str, float]:
    return {s["stage"]: s["seconds"] for s in funnel.get("stages", [])
            if isinstance(s, Mapping) and isinstance(s.get("seconds"), (int, float))}


def write_report(
    out_dir: str,
    funnel: Mapping,
    *,
    command: Sequence[str] | str | None = None,
    options: Mapping | None = None,
    versions: Mapping[str, str] | None = None,
    built_at: str | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
    stats: Mapping | None = None,
    title: str | None = None,
) -> dict:
    """Write OUT/report/build.json and OUT/report/index.html; return the build.json dict.

    ``funnel``: the stage counts (see :func:`webtext_pipeline.manifest.balance_funnel`);
    per-stage ``seconds``, when present, go to build.json's ``timings``. ``stats``: from
    :func:`corpus_stats` (computed from OUT/docs when None). ``extra_sections``: (title,
    HTML fragment) pairs, saved under report/sections/ so that a later
    :func:`add_report_section` keeps them; a fragment that is already a
    ``<section id=…>`` is used as it is.
    """
    balance = balance_funnel(funnel)
    if stats is None:
        stats = corpus_stats(out_dir)
    build: dict = {
        "report_version": REPORT_VERSION,
        "funnel": balance,
        "stats": dict(stats),
        "timings": _timings(funnel),
    }
    for key, value in (("command", command), ("options", options), ("versions", versions),
                       ("built_at", built_at), ("title", title)):
        if value is not None:
            build[key] = (list(value) if key == "command" and not isinstance(value, str)
                          else json.loads(json.dumps(value, default=str)))
    for section_title, fragment in extra_sections:
        _save_section(out_dir, section_title, fragment)
    folder = os.path.join(out_dir, REPORT_DIR)
    _write_text(os.path.join(folder, BUILD_JSON),
                json.dumps(build, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    _write_text(os.path.join(folder, INDEX_HTML), render_report(build, saved_sections(out_dir)))
    return build


def add_report_section(out_dir: str, title: str, fragment: str, key: str | None = None) -> str:
    """Add (or replace) one section of an existing report and re-render the page.

    Reads OUT/report/build.json (not the shards); returns the path of index.html.
    """
    path = os.path.join(out_dir, REPORT_DIR, BUILD_JSON)
    try:
        with open(path, encoding="utf-8") as handle:
            build = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: no build report to add a section to ({exc})") from None
    _save_section(out_dir, title, fragment, key)
    index = os.path.join(out_dir, REPORT_DIR, INDEX_HTML)
    _write_text(index, render_report(build, saved_sections(out_dir)))
    return index


# -- the dataset card -----------------------------------------------------------------------

def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
              (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if rows < bound), "1B<n<10B")


def _type_name(arrow_type: pa.DataType) -> str:
    return str(arrow_type).replace("list<element: ", "list<").replace("list<item: ", "list<")


def card_yaml(stats: Mapping, pretty_name: str = "WebText (open rebuild)") -> str:
    """The card's YAML header. One config; its single split holds every row (see the card)."""
    rows = max(stats["rows"], 1)
    langs = list(dict.fromkeys(
        k.split("-")[0].lower() for k, n in stats.get("langs", [])[:5]
        if k and k not in ("unknown", "und") and n / rows >= 0.01))
    lines = [
        "---",
        f"pretty_name: {json.dumps(pretty_name)}",
        "license: other",
        "license_name: third-party-web-content",
        "language:",
        *[f"- {lang}" for lang in (langs or ["en"])],
        "task_categories:",
        "- text-generation",
        "task_ids:",
        "- language-modeling",
        "size_categories:",
        f"- {_size_category(stats['rows'])}",
        "tags:",
        "- webtext",
        "- reddit",
        "- web-crawl",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path: docs/shard-*.parquet",
        "---",
    ]
    return "\n".join(lines) + "\n"


def dataset_card(build: Mapping) -> str:
    """The Hugging Face dataset card (README.md) for a build.json dict."""
    stats, balance = build["stats"], build["funnel"]
    splits = stats["splits"]
    rows = []
    for s in balance["stages"]:
        top = ", ".join(f"{r} {n:,}" for r, n in _reasons(s)[:4])
        more = len(s["rejects"]) - 4
        rows.append(f"| {s['stage']} | {s['in']:,} | {s['out']:,} | {s['rejected']:,} | "
                    f"{top}{f' (+{more} more)' if more > 0 else ''} |")
    columns = "\n".join(
        f"| `{f.name}` | `{_type_name(f.type)}` | {COLUMN_DOCS.get(f.name, '')} |"
        for f in DOCS_SCHEMA)
    command = build.get("command")
    command_text = command if isinstance(command, str) else " ".join(command or ["webtext build"])
    versions = ", ".join(f"{k} {v}" for k, v in sorted((build.get("versions") or {}).items()))
    domains = ", ".join(f"{k} ({v:,})" for k, v in stats["domains"]["top"][:10])
    subs = ", ".join(f"r/{k} ({v:,})" for k, v in stats["subreddits"]["top"][:10])
    months = [m for m, n in stats["months"] if n]
    span = f"{months[0]} to {months[-1]}" if months else "n/a"
    links = balance.get("links_stage")
    links_line = (f"The links stage read {links['records_read']:,} Reddit submissions and kept "
                  f"{links['kept']:,} posts ({links['rejected']:,} rejected), naming "
                  f"{links['links']:,} distinct links.\n\n") if links else ""
    return card_yaml(stats) + f"""
# WebText (open rebuild)

An open, reproducible rebuild of **WebText**, the corpus GPT-2 was trained on
(Radford et al., 2019, *Language Models are Unsupervised Multitask Learners*):
the text of web pages linked from Reddit submissions with at least the minimum
karma, fetched, extracted, cleaned and near-deduplicated, built with Apache Beam.

| | |
|---|---|
| documents | {stats['rows']:,} ({splits.get('train', 0):,} train, {splits.get('val', 0):,} val) |
| words | {stats['words']['total']:,} (mean {stats['words']['mean']:,.0f} per document) |
| files | {_shards(stats['files'])}, {human_bytes(stats['bytes'])} |
| domains | {stats['domains']['distinct']:,} distinct |
| first posts | {span} |

The build report with charts is in `report/index.html`; every input, option,
package version and shard checksum is in `MANIFEST.json`.

## Loading

Every shard holds both splits; the `split` column says which (`train` or
`val`, from a hash of `id`, so it is stable across builds). The single
configured split (named `train`, as Hugging Face names a lone split) therefore
holds **all** rows: filter on the column.

```python
from datasets import load_dataset

ds = load_dataset("parquet", data_dir="docs", split="train")   # or load_dataset(".")
train = ds.filter(lambda row: row["split"] == "train")
val = ds.filter(lambda row: row["split"] == "val")
```

```sql
-- DuckDB
SELECT split, count(*) FROM 'docs/*.parquet' GROUP BY split;
```

```
webtext inspect docs --where "domain = 'bbc.co.uk'" --head 5
```

## Columns

| column | type | meaning |
|---|---|---|
{columns}

## How it was built

```
{command_text}
```

{links_line}Every link that entered the fetch stage either became a document or was
rejected with a reason (`rejects/*.parquet`: `stage`, `key`, `reason`,
`detail`):

**{balance['equation']}**

| stage | in | out | rejected | top reasons |
|---|---:|---:|---:|---|
{chr(10).join(rows)}

Package versions: {versions or 'see MANIFEST.json'}.

Most documents come from {domains}.

Most posted in {subs}.

## License

The text of each document belongs to its authors and publishers; this
collection redistributes none of it under a license of its own. The links and
their karma come from Reddit submissions. Use the data for research, respect
the sites' terms and honour takedown requests; the `url` column names every
source. The code that builds the corpus is open source.

## Limitations

Reddit karma is a weak proxy for quality and reflects Reddit's audience:
English-language, US-centric and skewed to the subreddits above. Pages change
or disappear, so a rebuild fetches what is online now, not what was there when
the link was posted. Wikipedia is excluded, as in the original WebText.
"""


def write_card(out_dir: str, build: Mapping | None = None) -> str:
    """Write OUT/README.md from ``build`` (default: OUT/report/build.json); return its path."""
    if build is None:
        path = os.path.join(out_dir, REPORT_DIR, BUILD_JSON)
        try:
            with open(path, encoding="utf-8") as handle:
                build = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ReportError(f"{path}: no build report for the card ({exc})") from None
    path = os.path.join(out_dir, CARD_NAME)
    _write_text(path, dataset_card(build))
    return path


def utc_now() -> str:
    """A wall-clock stamp for ``built_at`` (the caller decides whether to record one)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
