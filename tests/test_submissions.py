"""The per-record rules: each quirk of the real dumps meets exactly one fate."""

from __future__ import annotations

import json

import pytest

from webtext_pipeline.links.submissions import LinkFilter, LinkRules, Post, parse_cutoff

DEC_2017 = 1512086400  # 2017-12-01T00:00:00Z
JAN_2018 = 1514764800  # first instant after the 2017-12 cutoff


def line(**fields) -> bytes:
    record = {
        "id": "abc",
        "url": "https://news.example.com/story",
        "created_utc": DEC_2017 + 60,
        "score": 10,
        "subreddit": "worldnews",
        "is_self": False,
        "over_18": False,
        "title": "A story",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


@pytest.fixture(scope="module")
def keep():
    return LinkFilter(LinkRules(cutoff="2017-12")).apply


def test_cutoff_is_first_instant_after_the_month():
    assert parse_cutoff("2017-12") == JAN_2018
    assert parse_cutoff("2017-02") == 1488326400  # 2017-03-01


@pytest.mark.parametrize("bad", ["2017-13", "2017-1", "17-12", "", "2017/12", "2017-00"])
def test_bad_cutoff_says_the_format(bad):
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_cutoff(bad)


def test_a_good_link_is_kept_with_its_fields(keep):
    post = keep(line())
    assert isinstance(post, Post)
    assert (post.post_id, post.url_key, post.domain, post.score) == (
        "abc", "https://news.example.com/story", "example.com", 10)


@pytest.mark.parametrize(
    "created", [DEC_2017, float(DEC_2017) + 0.5, str(DEC_2017), f"{DEC_2017}.0"]
)
def test_created_utc_as_int_float_or_string(keep, created):
    assert keep(line(created_utc=created)).created_utc == DEC_2017


def test_score_null_falls_back_to_ups(keep):
    assert keep(line(score=None, ups=7)).score == 7
    assert keep(line(score=None)).reason == "no_score"


def test_cutoff_boundary(keep):
    assert isinstance(keep(line(created_utc=JAN_2018 - 1)), Post)
    assert keep(line(created_utc=JAN_2018)).reason == "after_cutoff"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, None),
        ({"created_utc": "yesterday"}, "bad_created_utc"),
        ({"created_utc": None}, "bad_created_utc"),
        ({"subreddit": None}, "promoted_ad"),
        ({"subreddit": ...}, "promoted_ad"),
        ({"url": "[deleted]"}, "removed"),
        ({"removed_by_category": "moderator"}, "removed"),
        ({"score": 2}, "low_score"),
        ({"is_self": True, "url": "https://www.reddit.com/r/x/comments/1/"}, "self_post"),
        ({"is_self": ..., "url": "http://self.reddit.com"}, "self_post"),
        ({"is_self": False, "url": "http://self.AskReddit"}, "self_post"),
        ({"url": "https://www.reddit.com/r/x/comments/9/t/", "crosspost_parent": "t3_9"},
         "reddit_internal"),
        ({"url": "/r/x/comments/9/t/"}, "reddit_internal"),
        ({"url": "https://v.redd.it/abc"}, "reddit_internal"),
        ({"url": "https://i.redd.it/abc.jpg"}, "reddit_internal"),
        ({"url": "https://redd.it/abc"}, "reddit_internal"),
        ({"url": "https://fr.m.wikipedia.org/wiki/Pont"}, "wikipedia"),
        ({"over_18": True}, "over_18"),
        ({"subreddit": "CoonTown"}, "blocked_subreddit"),
        ({"url": "https://i.imgur.com/x"}, "blocked_domain"),
        ({"url": "https://example.com/paper.PDF"}, "blocked_extension"),
        ({"url": "ftp://example.com/x"}, "invalid_url"),
        ({"url": "http://192.168.0.1/"}, "invalid_url"),
        ({"url": ...}, "missing_field"),
        ({"id": None}, "missing_field"),
    ],
)
def test_each_rule_has_its_reason(keep, fields, reason):
    result = keep(line(**fields))
    assert getattr(result, "reason", None) == reason


def test_malformed_lines(keep):
    assert keep(b'{"id": "x", "url": ').reason == "bad_json"
    assert keep(b"[1, 2]").reason == "bad_record"
    assert keep(b'{"id": 5, "url": "https://a.com/"}').reason == "bad_record"
    broken = keep(b"{not json", where="RS_2017-12.zst:42")
    assert (broken.reason, broken.key) == ("bad_json", "RS_2017-12.zst:42")


def test_options_change_the_rules(tmp_path):
    assert isinstance(LinkFilter(LinkRules(keep_over_18=True)).apply(line(over_18=True)), Post)
    assert isinstance(LinkFilter(LinkRules(min_karma=1)).apply(line(score=1)), Post)
    custom = tmp_path / "domains.txt"
    custom.write_text("# mine\nexample.com\n")
    blocked = LinkFilter(LinkRules(domain_blocklist=str(custom))).apply(line())
    assert (blocked.reason, blocked.detail) == ("blocked_domain", "example.com")
    assert isinstance(LinkFilter(LinkRules(domain_blocklist=str(custom))).apply(
        line(url="https://imgur.com/x")), Post)


def test_sum_mode_keeps_low_scores_for_aggregation():
    assert isinstance(LinkFilter(LinkRules(karma="sum")).apply(line(score=1)), Post)
    with pytest.raises(ValueError, match="per-post or sum"):
        LinkRules(karma="max")


# --- apply_lines: whole-block decoding gives exactly the per-line results -----------------

RULE_SETS = [
    LinkRules(cutoff="2017-12"),
    LinkRules(cutoff="2017-12", karma="sum"),
    LinkRules(cutoff="2017-11", min_karma=0, keep_over_18=True),
]


def per_line(link_filter: LinkFilter, data: bytes, path: str, first_line: int) -> list:
    return [
        link_filter.apply(text, f"{path}:{first_line + index}")
        for index, text in enumerate(data.split(b"\n"))
        if text.strip()
    ]


def sample_lines(tmp_path) -> list[bytes]:
    """Every line of the sample months (all quirks, bad JSON included), truncated month too."""
    import io

    from webtext_pipeline.links.dumps import DumpError, iter_batches
    from webtext_pipeline.links.sample import write_sample_dumps

    lines = []
    for path in write_sample_dumps(tmp_path):
        for item in iter_batches(io.BytesIO(path.read_bytes()), str(path)):
            if not isinstance(item, DumpError):
                lines.extend(item.lines)
    return lines


@pytest.mark.parametrize("rules", RULE_SETS, ids=["default", "sum", "loose"])
def test_apply_lines_matches_apply_on_every_quirk(tmp_path, rules):
    from webtext_pipeline.links import submissions

    link_filter = LinkFilter(rules)
    lines = sample_lines(tmp_path)
    bad = {b'{"id": "broken", "url": "https://oops.com/", "score": 5', b"[1, 2, 3]"}
    assert bad <= set(lines)
    decodable = [text for text in lines if text not in bad]
    cases = {
        "all quirks, bad lines too": lines,
        "every quirk that decodes (block path throughout)": decodable,
        "a bad line in the middle of one group": decodable[:40] + [b"[1, 2, 3]"] + decodable[40:],
        "blank lines (line numbers must hold)": decodable[:10] + [b"", b"  "] + decodable[10:50],
        "crlf line ends": [text + b"\r" for text in decodable[:70]],
        "two records on a line, a blank line to make up the count": (
            decodable[:5] + [decodable[5] + decodable[6], b""] + decodable[7:40]
        ),
        "one record over two lines, two on another": (
            [decodable[0].replace(b',"url"', b'\n,"url"', 1), decodable[1] + b" " + decodable[2]]
            + decodable[3:40]
        ),
        "leading and trailing spaces": [b" " + text + b" " for text in decodable[:40]],
        "short block": decodable[:3],
        "exactly one group": decodable[: submissions.DECODE_GROUP],
    }
    assert submissions._plain_line_ends(b"\n".join(decodable)) is not None
    for name, block_lines in cases.items():
        data = b"\n".join(block_lines)
        for first_line in (1, 1001):
            got = link_filter.apply_lines(data, "RS_x.zst", first_line)
            assert got == per_line(link_filter, data, "RS_x.zst", first_line), name
    # ... and the decodable quirks really took the block path: no line went through `apply`.
    expected = per_line(link_filter, b"\n".join(decodable), "RS_x.zst", 1)
    link_filter.apply = None  # an instance attribute: calling it would fail
    assert link_filter.apply_lines(b"\n".join(decodable), "RS_x.zst", 1) == expected


def test_apply_lines_matches_apply_across_batches_of_a_truncated_file(tmp_path):
    """Small batches of each sample month (the 2017-10 one is truncated): the
    block path and the per-line path give identical results, line numbers included."""
    import io

    from webtext_pipeline.links.dumps import DumpError, iter_batches
    from webtext_pipeline.links.sample import write_sample_dumps

    link_filter = LinkFilter(LinkRules(cutoff="2017-12"))
    for path in write_sample_dumps(tmp_path):
        errors = []
        for batch_bytes in (1, 5000, 1 << 20):
            for item in iter_batches(io.BytesIO(path.read_bytes()), str(path), batch_bytes):
                if isinstance(item, DumpError):
                    errors.append(str(item))
                    continue
                expected = per_line(link_filter, item.data, item.path, item.first_line)
                assert link_filter.apply_lines(item.data, item.path, item.first_line) == expected
        assert bool(errors) == path.name.startswith("RS_2017-10")
