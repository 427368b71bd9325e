"""Corpus shards made up here, for tests and benchmarks before a build has produced any.

``sample_documents`` generates deterministic documents: the sample web's template
English articles (``sample_web.article_paragraphs``) with the things real web
text carries mixed in (numbers and prices, URLs, quotes, lists, code, other
scripts, emoji, combining marks, runs of whitespace, a literal
``<|endoftext|>``). ``write_shards`` writes any documents as
``shard-0000i-of-0000n.parquet`` files with the corpus's ``id``/``text``/``split``
columns (split from a hash of the id, 10 % val, as the corpus does).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from webtext_pipeline.records import fraction_from_hash, stable_id
from webtext_pipeline.sample_web import article_paragraphs

SHARD_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
])
VAL_FRACTION = 0.1

_EXTRAS = (
    "Prices rose {n}% to ${n},{n:03d}.{n:02d} in {year}, up from £{n}.{n:02d}.",
    "See https://example.{tld}/{word}/{n}?ref={word}&page={n} for details.",
    "“{Word},” she said, ‘it's {word}’ — and that's that… (really?)",
    "- item one: {word}\n- item two: {word}\n- item {n}: {word}s",
    "def {word}(x, y={n}):\n    return x * y  # {word}\n",
    "Der {Word} ist {n} Jahre alt. Le {word} coûte {n} €. El niño comió {n} manzanas.",
    "Русский текст про {word}. 中文 {n} 个字。日本語の{word}。한국어 {n}개.",
    "Emoji {n}: 😀 👍🏽 🎉 ❤️ 👨‍👩‍👧 — e\u0301 n\u0303 a\u0308 combining marks.",
    "Tabs\tand   runs   of    spaces\n\n\nand blank lines   \n",
    "They'll say we've done it; I'd say you're right, isn't it? DON'T {WORD}!",
    "The literal separator <|endoftext|> may appear in a page about {word}s.",
    "Version {n}.{n}.{n} released {year}-0{m}-1{m}; checksum 0x{hex}.",
)
_WORDS = ("river council budget station museum harbor engineer village library festival "
          "committee scientist valley report market bridge hospital program").split()


def _extra(rng: random.Random) -> str:
    word = rng.choice(_WORDS)
    return rng.choice(_EXTRAS).format(
        n=rng.randrange(1, 1000), m=rng.randrange(1, 9), year=rng.randrange(1990, 2018),
        word=word, Word=word.title(), WORD=word.upper(), tld=rng.choice(("com", "org", "net")),
        hex=f"{rng.getrandbits(32):08x}",
    )


def sample_documents(n_docs: int, seed: int = 0, paragraphs: tuple[int, int] = (2, 8)
                     ) -> Iterator[dict]:
    """``n_docs`` documents (``id``, ``text``) of varied English-like web text."""
    rng = random.Random(seed)
    for index in range(n_docs):
        doc_seed = f"tokenizer-sample-{seed}-{index}"
        parts = article_paragraphs(doc_seed, rng.randint(*paragraphs))
        for _ in range(rng.randrange(0, 4)):
            parts.insert(rng.randrange(len(parts) + 1), _extra(rng))
        yield {"id": stable_id(doc_seed), "text": "\n\n".join(parts)}


def split_of(doc_id: str) -> str:
    return "val" if fraction_from_hash(f"split:{doc_id}") < VAL_FRACTION else "train"


def write_shards(out_dir: str, documents: Iterable[dict], n_shards: int = 2,
                 row_group_rows: int = 10_000) -> list[str]:
    """Write ``documents`` round-robin into ``n_shards`` shards; return their paths.

    A document without a ``split`` gets one from a hash of its id.
    """
    os.makedirs(out_dir, exist_ok=True)
    rows: list[dict[str, list]] = [{"id": [], "text": [], "split": []} for _ in range(n_shards)]
    for index, doc in enumerate(documents):
        shard = rows[index % n_shards]
        shard["id"].append(doc["id"])
        shard["text"].append(doc["text"])
        shard["split"].append(doc.get("split") or split_of(doc["id"]))
    paths = []
    for number, columns in enumerate(rows):
        path = os.path.join(out_dir, f"shard-{number:05d}-of-{n_shards:05d}.parquet")
        pq.write_table(pa.table(columns, schema=SHARD_SCHEMA), path,
                       row_group_size=row_group_rows)
        paths.append(path)
    return paths
