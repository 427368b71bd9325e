"""`webtext inspect PATH`: look at a corpus (a shard, docs/ or a build folder) without loading it.

The summary comes from Parquet footers (rows, bytes, row groups, schema, the
created_utc range from row-group statistics) plus a few small columns (split,
domain, n_words) streamed batch by batch: the text column is never read, so it
stays fast on a 40 GB corpus. ``--head``, ``--doc``, ``--where`` and ``--sql``
go through DuckDB, where the corpus is a view named ``docs``.

Named ``inspect_corpus`` so that it never shadows the standard library's
``inspect``. Every bad path or query raises :class:`InspectError` (a
ValueError) with a one-line message.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TextIO

import pyarrow.compute as pc
import pyarrow.parquet as pq

from webtext_pipeline.manifest import human_bytes

SUMMARY_COLUMNS = ("split", "domain", "n_words")
HEAD_COLUMNS = ("id", "split", "domain", "reddit_score", "n_words", "title", "text")
CELL_WIDTH = 48
TEXT_WIDTH = 72
SQL_ROWS = 50
_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?%?$")


class InspectError(ValueError):
    """A bad PATH, a bad query or a missing document: one line, exit status 2."""


# -- files ----------------------------------------------------------------------------------

def corpus_files(path: str) -> list[str]:
    """The Parquet files at PATH: the file itself, a folder's *.parquet, or OUT/docs/*.parquet."""
    if os.path.isfile(path):
        _footer(path)
        return [path]
    if not os.path.exists(path):
        raise InspectError(f"{path}: no such file or folder")
    if not os.path.isdir(path):
        raise InspectError(f"{path}: not a file or folder")
    folder = os.path.join(path, "docs") if os.path.isdir(os.path.join(path, "docs")) else path
    files = sorted(
        os.path.join(folder, name) for name in os.listdir(folder)
        if name.endswith(".parquet") and not name.startswith((".", "_"))
    )
    if not files:
        raise InspectError(f"{path}: no .parquet files here (expected a shard, docs/ or a "
                           "build folder)")
    return files


def _footer(path: str) -> pq.FileMetaData:
    try:
        return pq.ParquetFile(path).metadata
    except Exception as exc:  # ArrowInvalid, OSError, …: all mean "cannot read this file"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InspectError(f"{path}: not a readable Parquet file ({reason})") from None


# -- formatting -----------------------------------------------------------------------------

def _cell(value: object, width: int | None, commas: bool = False) -> str:
    if value is None:
        text = ""
    elif commas and isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, bytes):
        text = f"<{len(value)} bytes>"
    else:
        text = str(value)
    text = " ".join(text.split()) if width is not None else text
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _numeric(value: object) -> bool:
    if isinstance(value, str):
        return bool(_NUMBER.match(value))
    return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(header: Sequence[str], rows: Iterable[Sequence], *,
                 widths: dict[str, int] | None = None, default_width: int | None = CELL_WIDTH,
                 indent: str = "", commas: bool = False) -> str:
    """Rows as an aligned text table; numbers right-aligned, long cells cut with "…".

    ``widths``/``default_width``: the longest cell per column (None: no limit, newlines
    kept). ``commas``: integers with thousands separators (counts, not ids or times).
    """
    widths = widths or {}
    rows = list(rows)
    cells = [[_cell(v, widths.get(h, default_width), commas)
              for h, v in zip(header, row, strict=True)] for row in rows]
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(header))]
    sizes = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(sizes[i]) if numeric[i] else v.ljust(sizes[i])
                 for i, v in enumerate(values)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(list(header)), line(["-" * s for s in sizes])]
    out.extend(line(c) for c in cells)
    return "\n".join(out)


def _day(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


# -- summary --------------------------------------------------------------------------------

def _created_range(meta: pq.FileMetaData, index: int | None) -> tuple[int, int] | None:
    if index is None:
        return None
    low = high = None
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None
        low = stats.min if low is None else min(low, stats.min)
        high = stats.max if high is None else max(high, stats.max)
    return None if low is None else (low, high)


def summarize(path: str, top: int = 10, batch_size: int = 65536) -> dict:
    """What is in the corpus, from footers and the small columns only (never ``text``)."""
    files = corpus_files(path)
    schema = None
    odd_schemas = []
    per_file = []
    created: tuple[int, int] | None = None
    created_known = True
    splits: Counter = Counter()
    domains: Counter = Counter()
    words = 0
    for file in files:
        meta = _footer(file)
        parquet = pq.ParquetFile(file)
        arrow_schema = parquet.schema_arrow
        if schema is None:
            schema = arrow_schema
        elif not arrow_schema.equals(schema):
            odd_schemas.append(os.path.basename(file))
        names = arrow_schema.names
        index = names.index("created_utc") if "created_utc" in names else None
        span = _created_range(meta, index) if meta.num_rows else None
        if span is None and meta.num_rows:
            created_known = False
        elif span:
            created = span if created is None else (min(created[0], span[0]),
                                                    max(created[1], span[1]))
        per_file.append({
            "file": os.path.basename(file), "rows": meta.num_rows,
            "row_groups": meta.num_row_groups, "bytes": os.path.getsize(file),
        })
        columns = [c for c in SUMMARY_COLUMNS if c in names]
        if not columns:
            continue
        for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
            for name, counter in (("split", splits), ("domain", domains)):
                if name in columns:
                    for item in pc.value_counts(batch.column(name)).to_pylist():
                        counter[item["values"]] += item["counts"]
            if "n_words" in columns:
                words += pc.sum(batch.column("n_words")).as_py() or 0
    rows = sum(f["rows"] for f in per_file)
    return {
        "path": path,
        "files": per_file,
        "rows": rows,
        "bytes": sum(f["bytes"] for f in per_file),
        "row_groups": sum(f["row_groups"] for f in per_file),
        "schema": [(f.name, str(f.type), f.nullable) for f in schema],
        "odd_schemas": odd_schemas,
        "created_utc": created if created_known else None,
        "words": words,
        "splits": sorted(splits.items()),
        "domains_distinct": len(domains),
        "top_domains": sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
    }


def format_summary(summary: dict, max_files: int = 10) -> str:
    rows = summary["rows"]
    out = [f"{summary['path']}: {len(summary['files'])} file(s), {rows:,} rows, "
           f"{human_bytes(summary['bytes'])}, {summary['row_groups']:,} row groups"]
    if summary["words"]:
        out.append(f"words: {summary['words']:,} (mean {summary['words'] / max(rows, 1):,.0f} "
                   "per document)")
    if summary["created_utc"]:
        low, high = summary["created_utc"]
        out.append(f"first posts: {_day(low)} to {_day(high)} (created_utc, from row-group "
                   "statistics)")
    if summary["odd_schemas"]:
        out.append(f"warning: schema differs from the first file's in "
                   f"{', '.join(summary['odd_schemas'])}")
    share = [(k, n, f"{n / max(rows, 1):.1%}") for k, n in summary["splits"]]
    if share:
        out += ["", "splits", format_table(("split", "rows", "share"), share, indent="  ",
                                             commas=True)]
    if summary["top_domains"]:
        top = [(k, n, f"{n / max(rows, 1):.1%}") for k, n in summary["top_domains"]]
        out += ["", f"top domains ({summary['domains_distinct']:,} distinct)",
                format_table(("domain", "rows", "share"), top, indent="  ", commas=True)]
    files = summary["files"]
    shown = files if len(files) <= max_files else files[: max_files - 1]
    table = [(f["file"], f["rows"], f["row_groups"], human_bytes(f["bytes"])) for f in shown]
    if len(shown) < len(files):
        table.append((f"… {len(files) - len(shown)} more", None, None, ""))
    out += ["", "files", format_table(("file", "rows", "row groups", "size"), table,
                                      default_width=None, indent="  ", commas=True)]
    out += ["", "schema", format_table(
        ("column", "type", "nullable"),
        [(n, t.replace("list<element: ", "list<"), "yes" if null else "no")
         for n, t, null in summary["schema"]], default_width=None, indent="  ")]
    return "\n".join(out)


# -- queries (DuckDB) -----------------------------------------------------------------------

def connect(path: str):
    """A DuckDB connection where the corpus at PATH is the view ``docs``."""
    import duckdb

    files = corpus_files(path)
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW docs AS SELECT * FROM read_parquet([{listed}])")
    return con


def query(path: str, sql: str, params: Sequence | None = None, limit: int | None = None,
          what: str = "--sql") -> tuple[list[str], list[tuple], bool]:
    """Run SQL over the ``docs`` view: (column names, up to ``limit`` rows, more rows left)."""
    import duckdb

    con = connect(path)
    try:
        cursor = con.execute(sql, params) if params else con.execute(sql)
        if cursor.description is None:
            return [], [], False
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit + 1)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InspectError(f"{what}: {first}") from None
    finally:
        con.close()
    more = limit is not None and len(rows) > limit
    return names, rows[:limit] if limit is not None else rows, more


def _columns_present(path: str, wanted: Sequence[str]) -> list[str]:
    names = pq.ParquetFile(corpus_files(path)[0]).schema_arrow.names
    return [c for c in wanted if c in names] or names


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows_table(names: Sequence[str], rows: Sequence[tuple]) -> str:
    return format_table(names, rows, widths={"text": TEXT_WIDTH, "id": 16})


def head(path: str, n: int = 10) -> str:
    """The first N documents (in file order), text cut to one line."""
    columns = _columns_present(path, HEAD_COLUMNS)
    names, rows, more = query(path, f"SELECT {', '.join(map(_quote, columns))} FROM docs "
                              f"LIMIT {int(n)}", what="--head")
    return _rows_table(names, rows) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


def where(path: str, condition: str, n: int = 10) -> str:
    """Documents matching a SQL condition: the count and the first N (text cut)."""
    if not condition.strip():
        raise InspectError("--where: empty condition")
    columns = ", ".join(map(_quote, _columns_present(path, HEAD_COLUMNS)))
    _, [(count,)], _ = query(path, f"SELECT count(*) FROM docs WHERE ({condition})",
                             what="--where")
    names, rows, _ = query(path, f"SELECT {columns} FROM docs WHERE ({condition}) "
                           f"LIMIT {int(n)}", what="--where")
    shown = f"showing the first {len(rows)}" if count > len(rows) else "all shown"
    return f"{count:,} documents where {condition} ({shown})\n" + _rows_table(names, rows)


def sql(path: str, statement: str, n: int | None = None) -> str:
    """Any SQL over the view ``docs``; long cells cut, at most N (default 50) rows printed."""
    if not statement.strip():
        raise InspectError("--sql: empty query")
    limit = SQL_ROWS if n is None else n
    names, rows, more = query(path, statement, limit=limit)
    if not names:
        return "(no result)"
    tail = (f"\n(first {len(rows)} rows shown; use --head N for more)" if more
            else f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return _rows_table(names, rows) + tail


def doc(path: str, doc_id: str) -> str:
    """One document: every field, then its full text."""
    names, rows, _ = query(path, "SELECT * FROM docs WHERE id = ? LIMIT 2", [doc_id],
                           what="--doc")
    if not rows:
        raise InspectError(f"--doc {doc_id}: no document with this id in {path}")
    record = dict(zip(names, rows[0], strict=True))
    text = record.pop("text", "")
    width = max(len(k) for k in record)
    lines = [f"{k:<{width}}  {_cell(v, None)}" for k, v in record.items()]
    if "created_utc" in record and isinstance(record["created_utc"], int):
        lines[list(record).index("created_utc")] += f"  ({_day(record['created_utc'])})"
    return "\n".join(lines) + "\n\n" + (text or "")


def run_inspect(path: str, *, head_n: int | None = None, doc_id: str | None = None,
                where_sql: str | None = None, sql_query: str | None = None, top: int = 10,
                out: TextIO | None = None) -> int:
    """The `webtext inspect` command: print the summary or the asked-for rows; returns 0."""
    chosen = [o for o, v in (("--doc", doc_id), ("--where", where_sql), ("--sql", sql_query))
              if v is not None]
    if len(chosen) > 1:
        raise InspectError(f"{' and '.join(chosen)}: choose one")
    if head_n is not None and head_n < 0:
        raise InspectError(f"--head {head_n}: must be 0 or more")
    if top < 1:
        raise InspectError(f"--top {top}: must be 1 or more")
    if doc_id is not None:
        text = doc(path, doc_id)
    elif where_sql is not None:
        text = where(path, where_sql, 10 if head_n is None else head_n)
    elif sql_query is not None:
        text = sql(path, sql_query, head_n)
    elif head_n is not None:
        text = head(path, head_n)
    else:
        text = format_summary(summarize(path, top=top))
    stream = out or sys.stdout
    stream.write(text.rstrip("\n") + "\n")
    return 0
