"""GPT-2's byte-level BPE, as data: the byte alphabet, the split pattern, and the file formats.

One vocabulary, four spellings:

- *ranks*: ``{token bytes: id}`` for every mergeable token (not ``<|endoftext|>``),
  the form ``tiktoken`` encodes with; a token's id is its merge priority.
- ``tokenizer.tiktoken``: the ranks as ``base64(bytes) id`` lines (tiktoken's own
  format, read by ``tiktoken.load.load_tiktoken_bpe``).
- ``vocab.json`` + ``merges.txt``: GPT-2's ``encoder.json`` / ``vocab.bpe`` layout,
  tokens spelled with GPT-2's printable stand-ins for bytes (``Ġ`` for a space).
- ``tokenizer.json``: Hugging Face ``tokenizers`` (built in ``encoder.py``).

GPT-2's layout, kept for every vocabulary written here: ids 0-255 are the 256
bytes in GPT-2's order, then one id per merge in merge order, then
``<|endoftext|>`` as the last id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable

EOT = "<|endoftext|>"
DEFAULT_VOCAB_SIZE = 50257  # GPT-2's: 256 bytes + 50,000 merges + <|endoftext|>
DEFAULT_MAX_TRAIN_BYTES = 256 << 20  # docs/tokenizer.md: where compression flattens, memory


class TokenizerError(ValueError):
    """A bad option, a missing or inconsistent input: printed by the CLI as one line."""


# GPT-2's splitting regex in tiktoken's faster, equivalent spelling (tiktoken's r50k_base).
# The original: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# Hugging Face's ByteLevel pre-tokenizer (use_regex=True) applies the original.
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from each byte to a printable character (its ``encoder.py``).

    Printable Latin-1 bytes stand for themselves; the other 68 are shifted to
    U+0100 onwards (space → ``Ġ``, newline → ``Ċ``). The map's order is also
    the order of GPT-2's first 256 ids.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + shifted)
            shifted += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {char: byte for byte, char in BYTE_TO_CHAR.items()}
BYTE_ORDER = list(BYTE_TO_CHAR)  # GPT-2's ids 0..255 → byte value


def token_bytes(token: str) -> bytes:
    """A byte-level token string (``Ġthe``) → its bytes (``b' the'``)."""
    return bytes(CHAR_TO_BYTE[char] for char in token)


def token_string(data: bytes) -> str:
    """Bytes → the byte-level token string GPT-2's files use."""
    return "".join(BYTE_TO_CHAR[byte] for byte in data)


def check_layout(ranks: dict[bytes, int], eot_id: int) -> None:
    """Raise ValueError unless the vocabulary has GPT-2's layout (see the module doc)."""
    for index, byte in enumerate(BYTE_ORDER):
        if ranks.get(bytes([byte])) != index:
            raise ValueError(f"byte {byte} is not at id {index} (GPT-2's byte order)")
    ids = sorted(ranks.values())
    if ids != list(range(len(ids))):
        raise ValueError("token ids are not 0..n-1 without gaps")
    if eot_id != len(ids):
        raise ValueError(f"{EOT} is id {eot_id}, expected the last id {len(ids)}")


# --- tiktoken's ranks file ----------------------------------------------------------------


def ranks_file_bytes(ranks: dict[bytes, int]) -> bytes:
    """The ``.tiktoken`` file: one ``base64(token) rank`` line per token, by rank."""
    lines = [
        base64.b64encode(token) + b" " + str(rank).encode("ascii")
        for token, rank in sorted(ranks.items(), key=lambda item: item[1])
    ]
    return b"\n".join(lines) + b"\n"


def parse_ranks(data: bytes, source: str = "ranks file") -> dict[bytes, int]:
    """Read a ``.tiktoken`` file (what ``tiktoken.load.load_tiktoken_bpe`` reads)."""
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(data.splitlines(), 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as exc:
            raise ValueError(f"{source}: line {number} is not 'base64 rank' ({exc})") from None
    return ranks


def checksum(ranks: dict[bytes, int], eot_id: int, pattern: str = GPT2_PATTERN) -> str:
    """sha256 naming a tokenizer by what decides its tokens: ranks, pattern, special token.

    Independent of file formats and library versions, so token files and models
    can record which tokenizer made them.
    """
    digest = hashlib.sha256(ranks_file_bytes(ranks))
    digest.update(b"\0" + pattern.encode("utf-8"))
    digest.update(b"\0" + json.dumps({EOT: eot_id}).encode("utf-8"))
    return digest.hexdigest()


# --- GPT-2's vocab.json + merges.txt --------------------------------------------------------


def gpt2_vocab(ranks: dict[bytes, int], eot_id: int) -> dict[str, int]:
    """``vocab.json`` (GPT-2's ``encoder.json``): token string → id, ``<|endoftext|>`` last."""
    vocab = {token_string(token): rank for token, rank in sorted(ranks.items(),
                                                                 key=lambda item: item[1])}
    vocab[EOT] = eot_id
    return vocab


def merges_text(merges: Iterable[tuple[str, str]]) -> str:
    """``merges.txt`` (GPT-2's ``vocab.bpe``): a version line, then ``left right`` per merge."""
    return "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges)


def parse_merges(text: str) -> list[tuple[str, str]]:
    merges = []
    for line in text.split("\n"):
        if not line or line.startswith("#version"):
            continue
        left, right = line.split(" ")
        merges.append((left, right))
    return merges


def write_atomic(path: str, data: bytes | str) -> None:
    """Write to a temporary name beside ``path``, then rename (never a half-written file)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with open(tmp, "wb") as handle:
        handle.write(payload)
    os.replace(tmp, path)


def write_json(path: str, data: object) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
