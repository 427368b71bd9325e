"""Floor 1: the record schemas, the Reject record and the reason vocabularies.

Every stage and every test reads its column names and types from here, so a
schema is defined exactly once. Stages never import each other; anything they
share lives in this module.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import pyarrow as pa

SCHEMA_VERSION = "1"

LINKS_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("url_key", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("score", pa.int64(), nullable=False),
        pa.field("score_sum", pa.int64(), nullable=False),
        pa.field("n_posts", pa.int64(), nullable=False),
        pa.field("post_ids", pa.list_(pa.string()), nullable=False),
        pa.field("subreddits", pa.list_(pa.string()), nullable=False),
        pa.field("created_utc", pa.int64(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
    ]
)

# One row per successfully fetched page. The link columns travel with it so the
# later stages never need to join back to links/.
FETCHED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("score", pa.int64(), nullable=False),
        pa.field("n_posts", pa.int64(), nullable=False),
        pa.field("subreddits", pa.list_(pa.string()), nullable=False),
        pa.field("created_utc", pa.int64(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("final_url", pa.string(), nullable=False),
        pa.field("http_status", pa.int32(), nullable=False),
        pa.field("content_type", pa.string(), nullable=False),
        pa.field("charset", pa.string(), nullable=False),
        # header | meta | detected | default
        pa.field("charset_source", pa.string(), nullable=False),
        pa.field("fetched_at", pa.string(), nullable=False),  # ISO-8601 UTC, from the WARC record
        pa.field("elapsed_ms", pa.int64(), nullable=False),
        pa.field("n_bytes", pa.int64(), nullable=False),
        pa.field("html", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("warc_offset", pa.int64(), nullable=False),
        pa.field("warc_length", pa.int64(), nullable=False),
    ]
)

# One row per extracted and cleaned page (OUT/clean/part-*.parquet): the fetched
# row without its HTML, plus the main text, the page's metadata and the
# language verdict. The dedup stage adds dup_cluster and dup_cluster_size.
EXTRACTED_FIELDS = [
    pa.field("text", pa.string(), nullable=False),
    pa.field("extractor", pa.string(), nullable=False),  # trafilatura | readability
    pa.field("page_title", pa.string(), nullable=False),
    pa.field("published", pa.string(), nullable=False),
    pa.field("sitename", pa.string(), nullable=False),
    pa.field("author", pa.string(), nullable=False),
    pa.field("lang", pa.string(), nullable=False),
    pa.field("lang_score", pa.float64(), nullable=False),
    pa.field("n_chars", pa.int64(), nullable=False),
    pa.field("n_words", pa.int64(), nullable=False),
]
CLEAN_SCHEMA = pa.schema([field for field in FETCHED_SCHEMA if field.name != "html"]
                         + EXTRACTED_FIELDS)

# Where each URL's response lives in the WARC archive (OUT/warc/index/*.parquet).
WARC_INDEX_SCHEMA = pa.schema(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("warc_file", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("length", pa.int64(), nullable=False),
        pa.field("status", pa.int32(), nullable=False),
        pa.field("fetched_at", pa.string(), nullable=False),
    ]
)

# The corpus: one row per kept document, in OUT/docs/shard-*.parquet.
DOCS_SCHEMA = pa.schema(
    [CLEAN_SCHEMA.field(name) for name in ("id", "url", "final_url", "domain", "title", "text")]
    + [
        pa.field("reddit_score", pa.int64(), nullable=False),  # the links' max score
        pa.field("reddit_posts", pa.int64(), nullable=False),  # the links' n_posts
    ]
    + [CLEAN_SCHEMA.field(name) for name in ("subreddits", "created_utc", "fetched_at",
                                              "http_status")]
    + [field for field in EXTRACTED_FIELDS if field.name != "text"]
    + [
        pa.field("dup_cluster", pa.string(), nullable=False),
        pa.field("dup_cluster_size", pa.int64(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)

# The fixed reject vocabulary of the links stage, in the order the rules run:
# a record is rejected with the first rule it fails.
LINKS_REASONS: dict[str, str] = {
    "bad_json": "the line is not valid JSON",
    "bad_record": "valid JSON but not a submission object (wrong types, not an object)",
    "missing_field": "no id or no url",
    "bad_created_utc": "created_utc missing or not a number",
    "after_cutoff": "created_utc at or after the first instant after the cutoff month",
    "promoted_ad": "no subreddit: a promoted post (advertisement), not a community link",
    "removed": "deleted or removed by moderators/Reddit (url gone or removed_by_category set)",
    "no_score": "score (and ups) null; karma unknown",
    "low_score": "karma below --min-karma",
    "self_post": "a self (text) post: is_self, or a self.* URL",
    "reddit_internal": "a link to Reddit itself (reddit.com, redd.it, i.redd.it, v.redd.it)",
    "invalid_url": "not http(s), no host, a private/loopback IP literal, or absurdly long",
    "wikipedia": "a Wikipedia page (any language, mobile included)",
    "over_18": "marked NSFW (keep with --keep-over-18)",
    "blocked_subreddit": "posted in a subreddit on the subreddit blocklist",
    "blocked_domain": "a domain on the domain blocklist",
    "blocked_extension": "a file extension on the extension blocklist (images, video, archives...)",
    "duplicate_post": "the same submission id seen again (in another file or twice in one)",
    "low_score_sum": "--karma sum: the URL's summed karma is below --min-karma",
    "truncated_file": "the compressed file ended early or is corrupt; its unread tail is lost",
}

FETCH_REASONS: dict[str, str] = {
    "bad_url": "not a fetchable http(s) URL",
    "blocked_address": "the host resolves to a loopback/private/link-local/reserved address",
    "robots_disallowed": "robots.txt disallows our User-Agent on this path",
    "dns_error": "the host name does not resolve",
    "connect_error": "connection refused, reset or TLS failure (after retries)",
    "timeout": "connect/read timeout or the per-URL wall-clock deadline",
    "http_<code>": "a final HTTP status other than 200, e.g. http_404 (after retries on 429/5xx)",
    "too_many_redirects": "more redirects than --max-redirects",
    "redirect_loop": "a redirect back to a URL already visited",
    "not_html": "Content-Type (or sniffed body) is not HTML/XHTML",
    "too_large": "body (or decoded body) larger than the byte cap",
    "decode_error": "the body could not be decoded to text",
    "not_in_archive": "--offline and the URL is not in the WARC cache",
}

# Extract: a row is rejected with the first rule it fails, in this order.
EXTRACT_REASONS: dict[str, str] = {
    "wikipedia": "the final URL (after redirects) or the URL is a Wikipedia page or a known mirror",
    "too_large": "the HTML is longer than ExtractConfig.max_html_chars; not parsed",
    "extract_timeout": "extraction ran past ExtractConfig.timeout_s; its worker process was killed",
    "extract_error": "the extractors raised (MemoryError under the worker's memory cap included) "
    "or the worker process died",
    "no_text": "neither trafilatura nor readability-lxml found any main text",
}

# Clean: the order the checks run (see webtext_pipeline.clean).
CLEAN_REASONS: dict[str, str] = {
    "boilerplate": "consent/legal boilerplate lines (cookies, privacy policy, terms) make up more "
    "than max_boilerplate_share of the text",
    "too_short": "fewer than min_chars non-space characters, or fewer than min_words words "
    "(about 128 GPT-2 tokens, OpenWebTextCorpus's floor)",
    "not_english": "langdetect's most likely language is not English, or its probability is "
    "below lang_threshold (detail: language and probability)",
    "wikipedia_text": "the text carries Wikipedia's own attribution or license line (a mirror)",
    "lorem_ipsum": "the text contains 'lorem ipsum' (placeholder page)",
    "code_like": "more than max_code_line_share of the lines look like source code",
    "few_stop_words": "fewer than min_stop_words of the, be, to, of, and, that, have, with",
    "word_length": "mean word length outside mean_word_length",
    "few_alpha_words": "fewer than min_alpha_word_share of the words contain a letter",
    "symbol_ratio": "more than max_symbol_ratio '#', '...' or '…' per word",
    "bullet_lines": "more than max_bullet_line_share of the lines start with a bullet",
    "ellipsis_lines": "more than max_ellipsis_line_share of the lines end with an ellipsis",
    "repeated_lines": "repeated lines make up more than max_dup_line_char_share of the characters",
    "repeated_ngrams": "words inside repeated word n-grams make up more than "
    "max_dup_ngram_char_share of the characters",
}

DEDUP_REASONS: dict[str, str] = {
    "exact_duplicate": "same normalised text (lower-cased word tokens) as the kept document "
    "named in detail (kept=ID)",
    "near_duplicate": "in a cluster of documents linked by word n-gram Jaccard >= --threshold; "
    "detail names the cluster's kept document (kept=ID)",
    "duplicate_id": "another input document has the same id; one is kept (best survivor rank, "
    "then smallest text hash)",
}

REASONS: dict[str, dict[str, str]] = {
    "links": LINKS_REASONS,
    "fetch": FETCH_REASONS,
    "extract": EXTRACT_REASONS,
    "clean": CLEAN_REASONS,
    "dedup": DEDUP_REASONS,
}


class Reject(NamedTuple):
    """Why one record left the pipeline; the unit of the reject table.

    A NamedTuple rather than a frozen dataclass: most submissions end as a
    reject, and a tuple is built ~3x faster.
    """

    stage: str
    key: str
    reason: str
    detail: str = ""

    def to_row(self) -> dict[str, str]:
        # Not dataclasses.asdict: it deep-copies field by field (~4 µs a row vs ~0.1 µs).
        return {"stage": self.stage, "key": self.key, "reason": self.reason, "detail": self.detail}


def stable_id(text: str) -> str:
    """A stable 16-hex-digit id (sha1 prefix) that never depends on the runner or the seed."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def fraction_from_hash(text: str) -> float:
    """Map a string to [0, 1) stably; used for train/val splits and sampling."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
