"""Streaming dump reading: every codec, concatenated streams, truncation noticed."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import pytest
import zstandard

from webtext_pipeline.links import dumps
from webtext_pipeline.links.dumps import DumpError, LineBatch, iter_batches

LINES = [b'{"id": "%d", "n": "%s"}' % (i, b"x" * (i % 50)) for i in range(20_000)]
DATA = b"\n".join(LINES) + b"\n"


def compress(suffix: str, data: bytes) -> bytes:
    if suffix == ".zst":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if suffix == ".bz2":
        return bz2.compress(data)
    if suffix == ".xz":
        return lzma.compress(data)
    if suffix == ".gz":
        return gzip.compress(data, mtime=0)
    return data


def read_all(blob: bytes, name: str, batch_bytes: int = 1 << 16):
    lines, errors = [], []
    for item in iter_batches(io.BytesIO(blob), name, batch_bytes=batch_bytes):
        if isinstance(item, DumpError):
            errors.append(str(item))
        else:
            assert isinstance(item, LineBatch)
            assert item.first_line == len(lines) + 1
            # the parser trusts these offsets instead of scanning the block again
            assert item.line_ends.tolist() == [i for i, b in enumerate(item.data) if b == 10]
            lines.extend(item.lines)
    return lines, errors


@pytest.mark.parametrize("suffix", [".zst", ".bz2", ".xz", ".gz", ".ndjson"])
def test_every_codec_streams_every_line(suffix):
    lines, errors = read_all(compress(suffix, DATA), f"RS_2017-12{suffix}")
    assert lines == LINES and errors == []


@pytest.mark.parametrize("suffix", [".zst", ".bz2", ".xz", ".gz"])
def test_concatenated_streams_are_read_through(suffix):
    blob = compress(suffix, DATA) + compress(suffix, DATA)
    lines, errors = read_all(blob, f"RS_2017-12{suffix}")
    assert lines == LINES + LINES and errors == []


def test_zstd_long_window_is_accepted():
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=31)
    blob = zstandard.ZstdCompressor(compression_params=params).compress(DATA)
    assert read_all(blob, "RS_2019-01.zst")[0] == LINES


@pytest.mark.parametrize("suffix", [".zst", ".bz2", ".xz", ".gz"])
def test_truncated_file_keeps_the_good_part_and_names_the_problem(suffix):
    blob = compress(suffix, DATA * 4)  # several bz2 blocks, so a prefix decodes to something
    lines, errors = read_all(blob[: len(blob) * 2 // 3], f"RS_2017-12{suffix}")
    assert len(errors) == 1 and ("truncated" in errors[0] or "corrupt" in errors[0])
    assert 0 < len(lines) < 4 * len(LINES)
    assert lines == (LINES * 4)[: len(lines)]  # whole lines only: the partial one is the lost tail


def test_garbage_is_reported_not_raised():
    lines, errors = read_all(b"this is not zstd at all" * 100, "RS_2017-12.zst")
    assert lines == [] and "corrupt" in errors[0]


def test_blank_lines_keep_line_numbers_and_missing_final_newline():
    lines, errors = read_all(b"a\n\nb\nc", "x_2017-01.ndjson")
    assert lines == [b"a", b"", b"b", b"c"] and errors == []


def test_absurdly_long_line_is_cut(monkeypatch):
    monkeypatch.setattr(dumps, "MAX_LINE_BYTES", 1000)
    lines, _ = read_all(b"x" * 5000 + b"\nok\n", "x_2017-01.ndjson")
    assert len(lines[0]) == 1000 and lines[-1] == b"ok"


def test_batches_are_bounded():
    batches = [b for b in iter_batches(io.BytesIO(DATA), "a_2017-01.json", batch_bytes=4096)]
    assert len(batches) > 10
    assert all(sum(len(line) for line in b.lines) < 4096 + 200 for b in batches)


@pytest.mark.parametrize(
    ("name", "month"),
    [
        ("RS_2017-12.zst", "2017-12"),
        ("gs://bucket/reddit/RS_v2_2008-01.xz", "2008-01"),
        ("RS_2011-07.bz2", "2011-07"),
        ("submissions.ndjson", None),
        ("RS_2017-13.zst", None),
    ],
)
def test_month_from_file_name(name, month):
    assert dumps.month_of(name) == month


def test_select_months_splits_on_the_cutoff():
    chosen, skipped = dumps.select_months(
        ["RS_2018-01.zst", "RS_2017-12.xz", "RS_2017-11.bz2", "notes.json"], "2017-12")
    assert chosen == ["RS_2017-11.bz2", "RS_2017-12.xz"]
    assert skipped == ["RS_2018-01.zst", "notes.json"]


def test_batches_cut_anywhere_give_the_same_lines(monkeypatch):
    """Whatever the read size, batch size and line-length cap, the lines (and so the
    line numbers) are those of a plain split: each cut to MAX_LINE_BYTES, a blank
    unterminated tail dropped."""
    import random

    rng = random.Random(7)
    for _ in range(300):
        cap = rng.choice([5, 40, 1000])
        monkeypatch.setattr(dumps, "MAX_LINE_BYTES", cap)
        monkeypatch.setattr(dumps, "READ_CHUNK", rng.choice([1, 7, 64, 4096]))
        lines = [
            bytes(rng.choice(b"ab{} \r") for _ in range(rng.randrange(rng.choice([4, 60]))))
            for _ in range(rng.randrange(40))
        ]
        data = b"\n".join(lines) + rng.choice([b"", b"\n", b" ", b"\n\n"])
        expected = data.split(b"\n")
        if not expected[-1].strip():
            expected.pop()
        expected = [line[:cap] for line in expected]
        got, errors = read_all(data, "x_2017-01.ndjson", batch_bytes=rng.choice([1, 30, 500]))
        assert got == expected and errors == []
