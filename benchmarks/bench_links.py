"""Links stage benchmark: read + parse + filter throughput, and memory, on a generated month.

    python benchmarks/bench_links.py                     # 1M records, 3 rounds, Beam, memory
    python benchmarks/bench_links.py --skip-beam         # library figures only
    python benchmarks/bench_links.py --long-window --lean --profile   # as in docs/benchmarks.md
    python benchmarks/bench_links.py --skip-single --skip-memory --beam-repeats 3

What it measures, all in one run so the anchors sit beside our figures:

1. Single process (= one core), decompression included, --repeats rounds
   interleaved across the cases, median CPU seconds: raw zstd decompression;
   decompress + cut into line batches (`iter_batches`), and that + split into
   lines; the anchors stdlib `json.loads`, `orjson.loads`,
   `msgspec.json.decode` (generic, whole record), each called per line;
   msgspec typed decode of the fields we read, per line and per batch
   (`decode_lines`); the previous path (split lines, `LinkFilter.apply` on
   each); and our path, `iter_batches` + `LinkFilter.apply_lines` per batch,
   as the Beam ParseAndFilter DoFn runs it. `--lean` repeats the table on
   ~1.1 KB lines, `--profile` adds a cProfile of our path.
2. The Beam links job through the CLI in a child process on the
   DirectRunner: 1 worker (in_memory) at N/5 and N records, 2 workers
   (multi_processing) at N: wall time, records/s, CPU seconds of the process
   tree, and peak RSS summed over the tree.
3. Peak RSS and CPU per record of the library read+parse+filter loop in a
   fresh process at N and 2N records (and, with `--long-window`, on files
   packed like the Pushshift dumps, `zstd --long=31`): flat means memory does
   not grow with input size. With `--long-window`, also parse+filter along
   the 2N `--long=31` file in eighths, with the page faults of each: the
   decompressor's 2 GiB window faults in while it first fills.

The generated month is RS_2017-06.zst in --workdir (cached: reruns skip the
generation). Its records look like Pushshift submissions of mid-2017: 36-38
fields, media/preview objects, ~1.7 KB a line, 78 % of scores below 3.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import string
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import numpy as np
import orjson
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fmt_int,
    fmt_mib,
    fmt_rate,
    fmt_ratio,
    load_average,
    machine_line,
    max_rss_self,
    median,
    print_table,
    round_robin,
    run_measured,
)

from webtext_pipeline.links.dumps import (  # noqa: E402
    ZSTD_MAX_WINDOW,
    DumpError,
    iter_batches,
)
from webtext_pipeline.links.submissions import LinkFilter, LinkRules, Post  # noqa: E402

MONTH = "2017-06"
FILE_NAME = f"RS_{MONTH}.zst"
MONTH_START = 1496275200  # 2017-06-01T00:00:00Z
MONTH_SECONDS = 30 * 86400
FIRST_ID = int("6eg000", 36)  # ids of June 2017 submissions start around here
GENERATOR_VERSION = 1
# The anchors the issue quotes (records/s per core, decompression included).
ISSUE_ANCHORS = {"json": 98_000, "orjson": 231_000, "msgspec": 345_000}
TARGET = 200_000


# --- the generated month ------------------------------------------------------------


class _Pools:
    """Pre-built strings the per-record loop picks from, so generation stays fast."""

    def __init__(self, rng: random.Random) -> None:
        letters = string.ascii_lowercase
        syllables = [a + b for a in "bcdfghklmnprstvwz" for b in "aeiou"] + ["th", "st", "er"]
        words = sorted(
            {"".join(rng.choices(syllables, k=rng.choice((1, 2, 2, 3, 3, 4)))) for _ in range(9000)}
        )
        rng.shuffle(words)
        word_weights = [1 / (rank + 1) for rank in range(len(words))]  # Zipf-like
        cum = []
        total = 0.0
        for weight in word_weights:
            total += weight
            cum.append(total)

        def text(n_words: int) -> str:
            return " ".join(rng.choices(words, cum_weights=cum, k=n_words))

        accents = ["é", "ü", "ñ", "—", "’", "“", "”", "…", "😂", "中国"]
        self.titles: list[tuple[str, str]] = []  # (json-encoded title, permalink slug)
        for _ in range(120_000):
            title = text(rng.randrange(3, 18)).capitalize()
            if rng.random() < 0.3:
                title += rng.choice(["?", "!", "...", " [OC]", " (2017)", ' "quote"'])
            if rng.random() < 0.06:
                title = title.replace(" ", f" {rng.choice(accents)} ", 1)
            slug = "_".join(title.lower().split()[:8])
            slug = "".join(c for c in slug if c.isascii() and (c.isalnum() or c == "_"))[:50]
            self.titles.append((json.dumps(title), slug or "post"))
        self.selftexts: list[str] = []
        for _ in range(15_000):
            roll = rng.random()
            if roll < 0.35:
                body = ""
            elif roll < 0.40:
                body = rng.choice(["[deleted]", "[removed]"])
            else:
                paragraphs = [
                    text(int(rng.lognormvariate(3.3, 0.9)) + 1).capitalize() + "."
                    for _ in range(rng.choice((1, 1, 2, 3)))
                ]
                body = "\n\n".join(paragraphs)
            self.selftexts.append(json.dumps(body))
        self.authors = [
            "".join(rng.choices(letters + string.digits + "_-", k=rng.randrange(4, 20)))
            for _ in range(150_000)
        ]
        self.authors[:4000] = ["[deleted]"] * 4000
        rng.shuffle(self.authors)
        popular = [
            "AskReddit",
            "pics",
            "funny",
            "gaming",
            "worldnews",
            "news",
            "videos",
            "todayilearned",
            "aww",
            "gifs",
            "politics",
            "The_Donald",
            "movies",
            "Showerthoughts",
            "science",
            "technology",
            "Music",
            "europe",
            "nba",
            "soccer",
            "leagueoflegends",
            "GlobalOffensive",
            "AutoNewspaper",
            "me_irl",
        ]
        names = popular + [
            "".join(rng.choices(syllables, k=rng.randrange(2, 5))).capitalize()
            + rng.choice(["", "", "s", "Porn", "_irl", "Circlejerk", "2", "News"])
            for _ in range(6000)
        ]
        self.subreddits = [(name, f"t5_{rng.randrange(36**5, 36**6):x}") for name in names]
        self.subreddit_cum = []
        total = 0.0
        for rank in range(len(self.subreddits)):
            total += 1 / (rank + 3) ** 0.9
            self.subreddit_cum.append(total)
        tlds = ["com"] * 12 + ["org", "net", "co.uk", "de", "ca", "com.au", "io", "info", "fr"]
        self.sites = [
            rng.choice(["", "", "www.", "www.", "blog.", "news.", "m."])
            + "".join(rng.choices(syllables, k=rng.randrange(2, 5)))
            + rng.choice(["", "", "-news", "times", "post", "daily", "-online"])
            + "."
            + rng.choice(tlds)
            for _ in range(20_000)
        ]
        self.site_cum = []
        total = 0.0
        for rank in range(len(self.sites)):
            total += 1 / (rank + 5)
            self.site_cum.append(total)
        self.words = words[:3000]
        self.flairs = ["null"] * 30 + [json.dumps(text(rng.randrange(1, 4))) for _ in range(400)]


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    while number:
        number, rem = divmod(number, 36)
        out.append(digits[rem])
    return "".join(reversed(out)) or "0"


def _rand_token(rng: random.Random, n: int) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    return "".join(rng.choices(alphabet, k=n))


def _score(u: float, rng: random.Random) -> int:
    """Scores as the dumps captured them shortly after posting: ~78 % below 3."""
    if u < 0.13:
        return 0
    if u < 0.65:
        return 1
    if u < 0.78:
        return 2
    return 2 + int(rng.paretovariate(0.75))


def _preview(rng: random.Random, width: int, height: int) -> str:
    image_id = _rand_token(rng, 43)
    sig = f"{rng.getrandbits(128):032x}"
    source = f'{{"url":"https://i.redditmedia.com/{image_id}.jpg?s={sig}","width":{width},"height":{height}}}'
    resolutions = []
    for res_w in (108, 216, 320, 640):
        if res_w > width:
            break
        res_h = max(1, height * res_w // width)
        res_sig = f"{rng.getrandbits(128):032x}"
        resolutions.append(
            f'{{"url":"https://i.redditmedia.com/{image_id}.jpg?fit=crop&amp;crop=faces%2Centropy'
            f'&amp;arm2=fit&amp;w={res_w}&amp;s={res_sig}","width":{res_w},"height":{res_h}}}'
        )
    return (
        f'{{"images":[{{"source":{source},"resolutions":[{",".join(resolutions)}],'
        f'"variants":{{}},"id":"{_rand_token(rng, 43)}"}}],"enabled":false}}'
    )


def _youtube_media(rng: random.Random, video: str, title_json: str) -> str:
    author = _rand_token(rng, rng.randrange(6, 16))
    return (
        '{"type":"youtube.com","oembed":{"provider_url":"https://www.youtube.com/",'
        f'"version":"1.0","title":{title_json},"type":"video","thumbnail_width":480,'
        f'"height":338,"width":600,"html":"&lt;iframe width=\\"600\\" height=\\"338\\" '
        f'src=\\"https://www.youtube.com/embed/{video}?feature=oembed\\" frameborder=\\"0\\" '
        f'allowfullscreen&gt;&lt;/iframe&gt;","author_name":"{author}",'
        f'"provider_name":"YouTube","thumbnail_url":"https://i.ytimg.com/vi/{video}/hqdefault.jpg",'
        f'"thumbnail_height":360,"author_url":"https://www.youtube.com/user/{author}"}}}}'
    )


def _link(rng: random.Random, pools: _Pools, post_id: str, sub: str, slug: str, title: str):
    """(is_self, url, domain, post_hint, media, preview, thumbnail) for one submission."""
    roll = rng.random()
    permalink = f"https://www.reddit.com/r/{sub}/comments/{post_id}/{slug}/"
    if roll < 0.36:
        return True, permalink, f"self.{sub}", None, "null", None, "self"
    thumb = f"https://b.thumbs.redditmedia.com/{_rand_token(rng, 43)}.jpg"
    width, height = rng.choice(((1024, 768), (640, 480), (1920, 1080), (3024, 4032), (800, 600)))
    if roll < 0.41:
        url = f"https://i.redd.it/{_rand_token(rng, 13).lower()}.jpg"
        return False, url, "i.redd.it", "image", "null", _preview(rng, width, height), thumb
    if roll < 0.42:
        url = f"https://v.redd.it/{_rand_token(rng, 13).lower()}"
        return False, url, "v.redd.it", "hosted:video", "null", None, thumb
    if roll < 0.56:
        kind = rng.random()
        if kind < 0.6:
            url = f"https://i.imgur.com/{_rand_token(rng, 7)}.{rng.choice(['jpg', 'png', 'gifv'])}"
            domain, hint = "i.imgur.com", "image"
        elif kind < 0.85:
            url, domain, hint = f"http://imgur.com/{_rand_token(rng, 7)}", "imgur.com", "link"
        else:
            url, domain, hint = f"https://imgur.com/a/{_rand_token(rng, 5)}", "imgur.com", "link"
        return False, url, domain, hint, "null", _preview(rng, width, height), thumb
    if roll < 0.65:
        video = _rand_token(rng, 11)
        if rng.random() < 0.7:
            url, domain = f"https://www.youtube.com/watch?v={video}", "youtube.com"
            if rng.random() < 0.2:
                url += f"&t={rng.randrange(10, 600)}s"
        else:
            url, domain = f"https://youtu.be/{video}", "youtu.be"
        media = _youtube_media(rng, video, title)
        return False, url, domain, "rich:video", media, _preview(rng, 480, 360), thumb
    if roll < 0.67:
        url = f"https://gfycat.com/{''.join(rng.choices(pools.words, k=3)).title()}"
        return False, url, "gfycat.com", "rich:video", "null", None, thumb
    if roll < 0.69:
        url = f"https://twitter.com/{_rand_token(rng, 9)}/status/{rng.getrandbits(62)}"
        return False, url, "twitter.com", "link", "null", None, thumb
    if roll < 0.70:
        other = _b36(FIRST_ID - rng.randrange(1, 10**6))
        url = f"https://www.reddit.com/r/{sub}/comments/{other}/{slug}/"
        return False, url, "reddit.com", None, "null", None, "default"
    site = rng.choices(pools.sites, cum_weights=pools.site_cum)[0]
    words = "-".join(rng.choices(pools.words, k=rng.randrange(3, 10)))
    shape = rng.random()
    if shape < 0.4:
        day = rng.randrange(1, 29)
        path = f"/2017/06/{day:02d}/{words}/"
    elif shape < 0.7:
        path = f"/{rng.choice(pools.words)}/{words}-{rng.randrange(10**7, 10**8)}"
    elif shape < 0.85:
        path = f"/article/{rng.randrange(10**5, 10**6)}/{words}.html"
    elif shape < 0.995:
        path = f"/index.php?id={rng.randrange(10**6)}&{rng.choice(pools.words)}=1"
    else:
        path = f"/files/{words}.pdf"
    url = f"{rng.choice(('http', 'https'))}://{site}{path}"
    if rng.random() < 0.2:
        url += ("&" if "?" in url else "?") + "utm_source=reddit&utm_medium=social"
    domain = site[4:] if site.startswith("www.") else site
    has_preview = rng.random() < 0.5
    preview = _preview(rng, width, height) if has_preview else None
    return False, url, domain, "link" if has_preview else None, "null", preview, thumb


def generate_lines(count: int, seed: int, first_index: int = 0, lean: bool = False):
    """Yield `count` Pushshift-style submission lines (bytes, newline-terminated).

    `lean` drops the preview and media objects (~1 KB lines instead of ~1.7 KB):
    the same records with less JSON to scan, to see what line size costs.
    """
    rng = random.Random(seed)
    pools = _Pools(random.Random(f"pools-{seed}"))
    subs = pools.subreddits
    for index in range(first_index, first_index + count):
        post_id = _b36(FIRST_ID + index)
        sub, sub_id = rng.choices(subs, cum_weights=pools.subreddit_cum)[0]
        title, slug = pools.titles[rng.randrange(len(pools.titles))]
        is_self, url, domain, hint, media, preview, thumbnail = _link(
            rng, pools, post_id, sub, slug, title
        )
        if lean:
            media, preview = "null", None
        created = MONTH_START + index * MONTH_SECONDS // max(count, 1) + rng.randrange(60)
        score = _score(rng.random(), rng)
        comments = int(rng.paretovariate(1.1)) - 1 if score else rng.randrange(3)
        over_18 = "true" if rng.random() < 0.06 else "false"
        selftext = pools.selftexts[rng.randrange(len(pools.selftexts))] if is_self else '""'
        flair = pools.flairs[rng.randrange(len(pools.flairs))]
        author = pools.authors[rng.randrange(len(pools.authors))]
        optional = ""
        if hint is not None:
            optional += f'"post_hint":"{hint}",'
        if preview is not None:
            optional += f'"preview":{preview},'
        whitelist = '"all_ads"' if over_18 == "false" else '"promo_adult_nsfw"'
        media_embed = "{}"
        if media != "null":
            media_embed = (
                '{"content":"&lt;iframe width=\\"600\\" height=\\"338\\" src=\\"https://www.youtube'
                '.com/embed/x?feature=oembed\\"&gt;&lt;/iframe&gt;","width":600,"scrolling":false,'
                '"height":338}'
            )
        line = (
            f'{{"author":"{author}","author_flair_css_class":{flair},"author_flair_text":{flair},'
            f'"contest_mode":false,"created_utc":{created},"distinguished":null,'
            f'"domain":"{domain}","edited":false,"gilded":0,"hide_score":false,"id":"{post_id}",'
            f'"is_self":{"true" if is_self else "false"},"is_video":false,'
            f'"link_flair_css_class":null,"link_flair_text":null,"locked":false,"media":{media},'
            f'"media_embed":{media_embed},"num_comments":{comments},"over_18":{over_18},'
            f'"parent_whitelist_status":{whitelist},'
            f'"permalink":"/r/{sub}/comments/{post_id}/{slug}/",{optional}'
            f'"retrieved_on":{created + rng.randrange(2, 40)},"score":{score},'
            f'"secure_media":{media},"secure_media_embed":{media_embed},"selftext":{selftext},'
            f'"spoiler":false,"stickied":false,"subreddit":"{sub}","subreddit_id":"{sub_id}",'
            f'"subreddit_name_prefixed":"r/{sub}","thumbnail":"{thumbnail}",'
            f'"title":{title},"url":"{url}","whitelist_status":{whitelist}}}\n'
        )
        yield line.encode("utf-8")


def write_month(
    path: Path, count: int, seed: int, long_window: bool = False, lean: bool = False
) -> dict:
    """Write a generated month as zstd (streamed, never whole in memory); return its stats."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    if long_window:  # as the Pushshift torrents are packed: zstd --long=31
        params = zstandard.ZstdCompressionParameters.from_level(
            3, window_log=31, enable_ldm=True, threads=os.cpu_count() or 1
        )
        compressor = zstandard.ZstdCompressor(compression_params=params)
    else:
        compressor = zstandard.ZstdCompressor(level=3, threads=os.cpu_count() or 1)
    raw = 0
    started = time.perf_counter()
    with open(tmp, "wb") as handle, compressor.stream_writer(handle, closefd=False) as writer:
        buffer: list[bytes] = []
        buffered = 0
        for line in generate_lines(count, seed, lean=lean):
            buffer.append(line)
            buffered += len(line)
            if buffered >= 1 << 22:
                writer.write(b"".join(buffer))
                raw += buffered
                buffer, buffered = [], 0
        writer.write(b"".join(buffer))
        raw += buffered
    tmp.replace(path)
    stats = {
        "records": count,
        "seed": seed,
        "long_window": long_window,
        "lean": lean,
        "version": GENERATOR_VERSION,
        "raw_bytes": raw,
        "zst_bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
    }
    _meta_path(path).write_text(json.dumps(stats, indent=1))
    return stats


def _meta_path(path: Path) -> Path:
    """The generator's stats, kept beside (not in) the dumps folder the CLI reads."""
    return path.parent.with_name(path.parent.name + ".json")


def ensure_month(
    workdir: Path, count: int, seed: int, long_window: bool = False, lean: bool = False
) -> tuple[Path, dict]:
    """The cached month file for (count, seed, window); generated when missing or stale."""
    kind = ("-long" if long_window else "") + ("-lean" if lean else "")
    folder = workdir / f"month-{count}{kind}-s{seed}"
    path = folder / FILE_NAME
    meta = _meta_path(path)
    if path.exists() and meta.exists():
        stats = json.loads(meta.read_text())
        if stats.get("version") == GENERATOR_VERSION and stats.get("records") == count:
            return path, stats
    print(f"generating {count:,} records → {path} …", flush=True)
    stats = write_month(path, count, seed, long_window, lean)
    print(
        f"  {stats['raw_bytes'] / count:,.0f} B/record, "
        f"{fmt_mib(stats['raw_bytes'])} raw, {fmt_mib(stats['zst_bytes'])} zst, "
        f"{stats['seconds']} s",
        flush=True,
    )
    return path, stats


# --- the single-process measurements ------------------------------------------------


def _batches(path: Path):
    with open(path, "rb") as handle:
        for item in iter_batches(handle, str(path)):
            if isinstance(item, DumpError):
                raise item
            yield item


def run_raw_decompress(path: Path) -> int:
    """Decompression alone, counting newlines (numpy, as iter_batches does): the floor."""
    codec = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 16):
            lines += int(np.count_nonzero(np.frombuffer(codec.decompress(chunk), np.uint8) == 10))
    return lines


def run_batches(path: Path) -> int:
    """iter_batches alone: decompress and cut into line blocks (no per-line work)."""
    last = None
    for batch in _batches(path):
        last = batch
    if last is None:
        return 0
    # the generated months hold no blank lines: the last block's lines end the count
    return last.first_line + len(last.line_ends)


def run_split(path: Path) -> int:
    records = 0
    for batch in _batches(path):
        for line in batch.lines:
            if line.strip():
                records += 1
    return records


def _parse_loop(loads):
    def run(path: Path) -> int:
        records = 0
        for batch in _batches(path):
            for line in batch.lines:
                if not line.strip():
                    continue
                loads(line)
                records += 1
        return records

    return run


def run_decode_lines(path: Path) -> int:
    """The typed decode of whole batches, as LinkFilter.apply_lines does it."""
    from webtext_pipeline.links.submissions import DECODE_GROUP, _decode_group, _plain_line_ends

    records = 0
    for batch in _batches(path):
        data = batch.data
        ends = _plain_line_ends(data, batch.line_ends)
        if ends is None:
            raise RuntimeError("a generated batch did not take the block decode")
        view, start, left = memoryview(data), 0, len(ends) + 1
        for stop in [*ends[DECODE_GROUP - 1 :: DECODE_GROUP].tolist(), len(data)]:
            lines = min(DECODE_GROUP, left)
            decoded = _decode_group(view[start:stop], lines)
            if decoded is None:
                raise RuntimeError("a generated group did not decode")
            records += lines
            start, left = stop + 1, left - lines
    return records


def run_filter(path: Path) -> tuple[int, collections.Counter]:
    """Our path, shaped like beam_jobs.links_job.ParseAndFilter.process."""
    link_filter = LinkFilter(LinkRules())
    fates: collections.Counter = collections.Counter()
    records = 0
    for batch in _batches(path):
        results = link_filter.apply_lines(batch.data, batch.path, batch.first_line, batch.line_ends)
        records += len(results)
        for result in results:
            if isinstance(result, Post):
                fates["kept"] += 1
            else:
                fates[result.reason] += 1
    return records, fates


def run_filter_per_line(path: Path) -> tuple[int, collections.Counter]:
    """The previous path: split each batch into lines, `LinkFilter.apply` on each."""
    link_filter = LinkFilter(LinkRules())
    apply = link_filter.apply
    fates: collections.Counter = collections.Counter()
    records = 0
    for batch in _batches(path):
        for index, line in enumerate(batch.lines):
            if not line.strip():
                continue
            records += 1
            result = apply(line, f"{batch.path}:{batch.first_line + index}")
            if isinstance(result, Post):
                fates["kept"] += 1
            else:
                fates[result.reason] += 1
    return records, fates


def single_process_table(
    path: Path, repeats: int, raw_bytes: int, label: str = "realistic lines"
) -> dict[str, float]:
    from webtext_pipeline.links.submissions import RawSubmission

    typed = msgspec.json.Decoder(RawSubmission).decode
    generic = msgspec.json.Decoder().decode
    cases = [
        ("zstd decompress only", "(floor)", run_raw_decompress),
        ("decompress + cut into batches (iter_batches)", "(floor)", run_batches),
        ("decompress + split lines (batch.lines)", "(floor)", run_split),
        ("stdlib json.loads", "anchor", _parse_loop(json.loads)),
        ("orjson.loads", "anchor", _parse_loop(orjson.loads)),
        ("msgspec.json.decode (generic)", "anchor", _parse_loop(generic)),
        ("msgspec typed decode, per line", "parse only", _parse_loop(typed)),
        ("msgspec typed decode_lines, per batch", "ours, parse only", run_decode_lines),
        (
            "split lines + LinkFilter.apply per line",
            "previous parse+filter",
            lambda p: run_filter_per_line(p)[0],
        ),
        ("iter_batches + LinkFilter.apply_lines", "ours, parse+filter", lambda p: run_filter(p)[0]),
    ]
    run_raw_decompress(path)  # warm the page cache, so every row reads from memory
    load_before = load_average()
    timed = round_robin([(name, lambda fn=fn: fn(path)) for name, _kind, fn in cases], repeats)
    load_after = load_average()
    records = None
    rates: dict[str, float] = {}  # records per CPU-second: the per-core figure
    rows = []
    for name, kind, _fn in cases:
        timings, result = timed[name]
        count = result if isinstance(result, int) else result[0]
        records = records or count
        if count != records:
            raise RuntimeError(f"{name}: {count} records, expected {records}")
        cpu = median([t.cpu_s for t in timings])
        wall = median([t.wall_s for t in timings])
        rates[name] = count / cpu
        rows.append((name, kind, cpu, wall))
    json_rate = rates["stdlib json.loads"]
    msgspec_rate = rates["msgspec.json.decode (generic)"]
    anchors = {
        "stdlib json.loads": ISSUE_ANCHORS["json"],
        "orjson.loads": ISSUE_ANCHORS["orjson"],
        "msgspec.json.decode (generic)": ISSUE_ANCHORS["msgspec"],
        "iter_batches + LinkFilter.apply_lines": TARGET,
    }
    table = []
    for name, kind, cpu, wall in rows:
        rate = rates[name]
        quoted = anchors.get(name)
        table.append(
            (
                name,
                kind,
                f"{cpu:.2f} s",
                f"{wall:.2f} s",
                fmt_rate(rate),
                f"{raw_bytes / records * rate / 1e6:,.0f}",
                fmt_ratio(rate / json_rate),
                fmt_ratio(rate / msgspec_rate),
                (fmt_rate(quoted) + (" (target)" if quoted == TARGET else "")) if quoted else "",
            )
        )
    print_table(
        f"Single process (one core), {records:,} records ({label}), median of {repeats} "
        "interleaved "
        f"rounds (load average {load_before} before, {load_after} after)",
        [
            "path",
            "role",
            "CPU",
            "wall",
            "records/CPU-s",
            "MB/CPU-s",
            "vs json",
            "vs msgspec",
            "issue's figure",
        ],
        table,
    )
    return rates


def profile_filter(path: Path, top: int = 18) -> None:
    """cProfile of one parse+filter pass: where the time goes (profiling inflates calls)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run_filter, path)
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(), key=lambda kv: -kv[1][2]
    )[:top]:
        where = f"{Path(filename).name}:{line}({name})" if line else name
        rows.append(
            (
                where,
                fmt_int(calls),
                f"{tottime:.2f} s",
                f"{100 * tottime / total:.0f} %",
                f"{cumtime:.2f} s",
            )
        )
    print_table(
        f"cProfile of iter_batches + LinkFilter.apply_lines ({total:.1f} s under the profiler)",
        ["function", "calls", "own time", "share", "cumulative"],
        rows,
    )


def fates_table(path: Path) -> None:
    records, fates = run_filter(path)
    rows = [
        (reason, fmt_int(n), f"{100 * n / records:.1f} %")
        for reason, n in sorted(fates.items(), key=lambda kv: -kv[1])
    ]
    print_table(
        f"What LinkFilter did with the {records:,} generated records",
        ["fate", "records", "share"],
        rows,
    )


# --- the Beam job through the CLI ------------------------------------------------------


IN_MEMORY = ["--direct_num_workers", "1", "--direct_running_mode", "in_memory"]
MULTI_PROCESSING = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]


def beam_table(runs: list[tuple[str, int, list[str], Path, int]], repeats: int) -> None:
    """Each run: (label, workers, runner flags, dump file, its record count)."""
    rows = []
    for name, workers, flags, path, records in runs:
        measured_runs = []
        for _ in range(repeats):
            out = Path(tempfile.mkdtemp(prefix="bench-links-out-"))
            argv = [
                sys.executable,
                "-m",
                "webtext_pipeline.cli",
                "links",
                "--dumps",
                str(path.parent),
                "--out",
                str(out),
                "--cutoff",
                "2017-12",
                "--runner",
                "DirectRunner",
                *flags,
            ]
            print(f"  {' '.join(argv[2:])}  (load {load_average()})", flush=True)
            measured = run_measured(argv, interval_s=0.1).check()
            stage = json.loads((out / "links" / "_stage.json").read_text())
            shutil.rmtree(out, ignore_errors=True)
            if stage["records_read"] != records or not stage.get("balanced"):
                raise RuntimeError(
                    f"{name}: read {stage['records_read']}, balanced={stage.get('balanced')}"
                )
            print(
                f"    {measured.wall_s:.1f} s wall, {measured.cpu_s:.1f} CPU s, "
                f"peak tree RSS {fmt_mib(measured.peak_tree_rss)}, "
                f"{measured.max_processes} processes (load {load_average()})",
                flush=True,
            )
            measured_runs.append(measured)
        wall = median([m.wall_s for m in measured_runs])
        cpu = median([m.cpu_s for m in measured_runs])
        rows.append(
            (
                name,
                fmt_int(records),
                f"{wall:.1f} s",
                fmt_rate(records / wall),
                fmt_rate(records / wall / workers),
                f"{cpu:.1f} s",
                fmt_rate(records / cpu),
                fmt_mib(max(m.peak_tree_rss for m in measured_runs)),
                fmt_mib(max(m.peak_main_rss for m in measured_runs)),
                str(max(m.max_processes for m in measured_runs)),
            )
        )
    print_table(
        f"Beam links job via `webtext links`, median of {repeats} (wall time includes "
        "interpreter and pipeline start, the dedup GroupByKey, the combiner and the Parquet "
        "writes; CPU sums the whole process tree)",
        [
            "runner",
            "records",
            "wall",
            "records/s",
            "records/s per worker",
            "CPU",
            "records per CPU-s",
            "peak RSS (tree)",
            "peak RSS (main)",
            "processes",
        ],
        rows,
    )


# --- memory versus input size -------------------------------------------------------------


def child_loop(path: str) -> None:
    """Run in a fresh process: the library loop once, then print records and peak RSS."""
    baseline = max_rss_self()
    started, cpu_started = time.perf_counter(), time.process_time()
    records, fates = run_filter(Path(path))
    print(
        json.dumps(
            {
                "records": records,
                "kept": fates["kept"],
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu_started,
                "baseline_rss": baseline,
                "max_rss": max_rss_self(),
            }
        )
    )


def child_segments(path: str, segment: int) -> None:
    """Run in a fresh process: our path over the file, CPU and page faults per `segment`
    records (a zstd --long=31 decompressor faults in its 2 GiB window as it first fills)."""
    import resource

    link_filter = LinkFilter(LinkRules())
    rows, records, first = [], 0, 0
    usage, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time()

    def close_segment() -> None:
        nonlocal usage, cpu, first
        now = resource.getrusage(resource.RUSAGE_SELF)
        rows.append({"first": first, "last": records, "cpu": time.process_time() - cpu,
                     "sys": now.ru_stime - usage.ru_stime,
                     "faults": now.ru_minflt - usage.ru_minflt})
        usage, cpu, first = now, time.process_time(), records

    for batch in _batches(Path(path)):
        records += len(
            link_filter.apply_lines(batch.data, batch.path, batch.first_line, batch.line_ends)
        )
        if records - first >= segment:
            close_segment()
    if records > first:
        close_segment()
    print(json.dumps(rows))


def window_segments_table(path: Path, records: int) -> None:
    segment = max(records // 8, 1)
    argv = [sys.executable, __file__, "--child-segments", str(path), "--segment", str(segment)]
    measured = run_measured(argv, interval_s=0.5).check()
    segments = json.loads(measured.stdout.strip().splitlines()[-1])
    print_table(
        f"Parse+filter along one zstd --long=31 file of {records:,} records (fresh process)",
        ["records", "CPU", "records/CPU-s", "of it kernel (sys)", "minor page faults"],
        [
            (
                f"{row['first']:,}–{row['last']:,}",
                f"{row['cpu']:.2f} s",
                fmt_rate((row["last"] - row["first"]) / row["cpu"]),
                f"{row['sys']:.2f} s",
                fmt_int(row["faults"]),
            )
            for row in segments
        ],
    )


def memory_table(months: list[tuple[str, Path, dict]]) -> None:
    rows = []
    for label, path, stats in months:
        argv = [sys.executable, __file__, "--child-loop", str(path)]
        measured = run_measured(argv, interval_s=0.05).check()
        report = json.loads(measured.stdout.strip().splitlines()[-1])
        rows.append(
            (
                label,
                fmt_int(report["records"]),
                fmt_mib(stats["raw_bytes"]),
                fmt_mib(report["baseline_rss"]),
                fmt_mib(report["max_rss"]),
                fmt_mib(measured.peak_tree_rss),
                fmt_rate(report["records"] / report["seconds"]),
                fmt_rate(report["records"] / report["cpu_seconds"]),
            )
        )
        print(f"  {label}: max RSS {fmt_mib(report['max_rss'])}", flush=True)
    print_table(
        "Peak memory of the library read+parse+filter loop, each in a fresh process",
        [
            "file",
            "records",
            "decompressed size",
            "RSS after imports",
            "peak RSS (VmHWM)",
            "peak RSS (sampled)",
            "records/s (wall)",
            "records/CPU-s",
        ],
        rows,
    )


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "webtext-bench"))
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument(
        "--skip-single", action="store_true", help="skip the single-process throughput table"
    )
    parser.add_argument("--skip-beam", action="store_true")
    parser.add_argument(
        "--beam-records",
        type=int,
        default=None,
        help="records for the Beam runs (default: --records)",
    )
    parser.add_argument("--beam-repeats", type=int, default=1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument(
        "--long-window",
        action="store_true",
        help="also measure memory and speed on zstd --long=31 files, as Pushshift packs them",
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="also time the single-process rows on ~1 KB lines (no preview/media)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print a cProfile of the parse+filter loop (top functions)",
    )
    parser.add_argument("--child-loop", help=argparse.SUPPRESS)
    parser.add_argument("--child-segments", help=argparse.SUPPRESS)
    parser.add_argument("--segment", type=int, default=250_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_loop:
        child_loop(args.child_loop)
        return 0
    if args.child_segments:
        child_segments(args.child_segments, args.segment)
        return 0

    workdir = Path(args.workdir)
    print(f"machine: {machine_line()}")
    print(f"command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}".rstrip())
    path, stats = ensure_month(workdir, args.records, args.seed)
    print_table(
        "Generated month",
        ["file", "records", "bytes/record", "decompressed", "zst", "ratio"],
        [
            (
                FILE_NAME,
                fmt_int(stats["records"]),
                fmt_int(stats["raw_bytes"] / stats["records"]),
                fmt_mib(stats["raw_bytes"]),
                fmt_mib(stats["zst_bytes"]),
                fmt_ratio(stats["raw_bytes"] / stats["zst_bytes"]),
            )
        ],
    )
    if not args.skip_single:
        fates_table(path)
        print("single process:", flush=True)
        single_process_table(path, args.repeats, stats["raw_bytes"])
    if args.profile:
        profile_filter(path)
    if args.lean:
        lean_path, lean_stats = ensure_month(workdir, args.records, args.seed, lean=True)
        print(
            f"single process, lean lines ({lean_stats['raw_bytes'] / args.records:,.0f} B):",
            flush=True,
        )
        single_process_table(
            lean_path,
            args.repeats,
            lean_stats["raw_bytes"],
            label=f"lean {lean_stats['raw_bytes'] / args.records:,.0f}-byte lines",
        )

    if not args.skip_beam:
        beam_records = args.beam_records or args.records
        beam_path = (
            path
            if beam_records == args.records
            else ensure_month(workdir, beam_records, args.seed)[0]
        )
        small = max(beam_records // 5, 1)
        small_path = ensure_month(workdir, small, args.seed)[0]
        print("beam:", flush=True)
        beam_table(
            [
                ("DirectRunner, 1 worker (in_memory)", 1, IN_MEMORY, small_path, small),
                ("DirectRunner, 1 worker (in_memory)", 1, IN_MEMORY, beam_path, beam_records),
                (
                    "DirectRunner, 2 workers (multi_processing)",
                    2,
                    MULTI_PROCESSING,
                    beam_path,
                    beam_records,
                ),
            ],
            args.beam_repeats,
        )

    if not args.skip_memory:
        double, double_stats = ensure_month(workdir, 2 * args.records, args.seed)
        months = [
            (f"{args.records:,} records", path, stats),
            (f"{2 * args.records:,} records", double, double_stats),
        ]
        if args.long_window:
            for count in (args.records, 2 * args.records):
                long_path, long_stats = ensure_month(workdir, count, args.seed, long_window=True)
                months.append((f"{count:,} records, zstd --long=31", long_path, long_stats))
        print("memory:", flush=True)
        memory_table(months)
        if args.long_window:
            window_segments_table(months[-1][1], 2 * args.records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
