"""Word n-gram shingles, hashed once to 64 bits and vectorised with numpy.

Normalisation is the one the evaluation set uses (`make_neardup_eval.shingles`):
lower-case the text, take the runs of Unicode word characters (`re` `\\w+`:
`str.isalnum()` or `_`) as tokens, and make the set of word n-grams (a
document with fewer than n tokens has one shingle: all its tokens). Everything
else (punctuation, whitespace, markup left over) only separates tokens.

Nothing here builds a Python string per token or per shingle:

1. the lower-cased text becomes an array of code points (UTF-32);
2. a word-character mask finds the token boundaries;
3. each token's hash is a polynomial over its code points, taken from one
   prefix sum over the whole document (mod 2^64), then avalanched;
4. each n-gram's hash mixes its n token hashes position by position;
5. sort + drop repeats gives the shingle set as a sorted array of uint64.

`token_hash` and `shingle_hash` are the same functions in plain Python, used
by the tests (and as the `hashfunc` handed to datasketch when its signatures are
compared with ours). Hashes never depend on the process, the runner or
PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

WORD_RE = re.compile(r"\w+")

MASK64 = (1 << 64) - 1
# Odd 64-bit constants (golden ratio, splitmix64, murmur3 finalizer).
TOKEN_BASE = 0x9E3779B97F4A7C15
TOKEN_LENGTH_MIX = 0x94D049BB133111EB
SHINGLE_MIX = 0xBF58476D1CE4E5B9
_FMIX1 = 0xFF51AFD7ED558CCD
_FMIX2 = 0xC4CEB9FE1A85EC53

_U64 = np.uint64
_ASCII_WORD = np.zeros(129, dtype=bool)  # index 128 stands for "not ASCII"
for _code in range(128):
    _ASCII_WORD[_code] = chr(_code).isalnum() or chr(_code) == "_"

EMPTY = np.zeros(0, dtype=np.uint64)


def fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (a bijection that avalanches), element-wise."""
    with np.errstate(over="ignore"):
        values = values ^ (values >> _U64(33))
        values = values * _U64(_FMIX1)
        values = values ^ (values >> _U64(33))
        values = values * _U64(_FMIX2)
        return values ^ (values >> _U64(33))


def fmix64_int(value: int) -> int:
    value ^= value >> 33
    value = (value * _FMIX1) & MASK64
    value ^= value >> 33
    value = (value * _FMIX2) & MASK64
    return value ^ (value >> 33)


class _Powers:
    """TOKEN_BASE**i and its inverse**i mod 2^64, grown on demand (16 bytes per character
    of the longest document seen; 16 MB for a 1M-character page)."""

    def __init__(self) -> None:
        self.size = 0
        self.up = EMPTY
        self.down = EMPTY

    def ensure(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if size > self.size:
            size = max(size, 2 * self.size, 1 << 14)
            inverse = pow(TOKEN_BASE, -1, 1 << 64)
            with np.errstate(over="ignore"):
                up = np.full(size, TOKEN_BASE, dtype=np.uint64)
                up[0] = 1
                down = np.full(size, inverse, dtype=np.uint64)
                down[0] = 1
                self.up, self.down = np.cumprod(up), np.cumprod(down)
            self.size = size
        return self.up, self.down


_POWERS = _Powers()


def word_mask(code_points: np.ndarray) -> np.ndarray:
    """True where a code point is a `\\w` character (str.isalnum() or '_')."""
    mask = _ASCII_WORD[np.minimum(code_points, 128)]
    high = code_points >= 128
    if high.any():
        unique, inverse = np.unique(code_points[high], return_inverse=True)
        flags = np.fromiter(
            (chr(code).isalnum() for code in unique.tolist()), dtype=bool, count=len(unique)
        )
        mask[high] = flags[inverse]
    return mask


def token_hashes(text: str) -> np.ndarray:
    """The 64-bit hash of every token of the lower-cased text, in order (uint64 array)."""
    lowered = text.lower()
    code_points = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    if code_points.size == 0:
        return EMPTY
    mask = word_mask(code_points)
    edges = np.diff(mask.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    if starts.size == 0:
        return EMPTY
    ends = np.flatnonzero(edges == -1)
    up, down = _POWERS.ensure(code_points.size)
    prefix = np.empty(code_points.size + 1, dtype=np.uint64)
    prefix[0] = 0
    with np.errstate(over="ignore"):
        np.cumsum(code_points.astype(np.uint64) * up[: code_points.size], out=prefix[1:])
        poly = (prefix[ends] - prefix[starts]) * down[starts]
        lengths = (ends - starts).astype(np.uint64) * _U64(TOKEN_LENGTH_MIX)
    return fmix64(poly ^ lengths)


def token_hash(token: str) -> int:
    """Plain-Python twin of `token_hashes` for one (already lower-cased) token."""
    poly, power = 0, 1
    for char in token:
        poly = (poly + ord(char) * power) & MASK64
        power = (power * TOKEN_BASE) & MASK64
    return fmix64_int(poly ^ ((len(token) * TOKEN_LENGTH_MIX) & MASK64))


def shingle_hashes(tokens: np.ndarray, ngram: int = 5) -> np.ndarray:
    """The shingle set: sorted unique 64-bit hashes of the word n-grams."""
    count = tokens.size
    if count == 0:
        return EMPTY
    width = min(ngram, count)
    windows = count - width + 1
    mixed = np.full(windows, width, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(width):
            mixed ^= tokens[offset : offset + windows]
            mixed *= _U64(SHINGLE_MIX)
    return sorted_unique(fmix64(mixed))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for small 1-d arrays, 3x faster (numpy 2.x's hash-based unique is slow here)."""
    if values.size < 2:
        return values.copy()
    ordered = np.sort(values)
    keep = np.empty(ordered.size, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def shingle_hash(token_hash_values: Sequence[int]) -> int:
    """Plain-Python twin of one element of `shingle_hashes` (token hashes of one n-gram)."""
    mixed = len(token_hash_values)
    for value in token_hash_values:
        mixed = ((mixed ^ value) * SHINGLE_MIX) & MASK64
    return fmix64_int(mixed)


def tokens(text: str) -> list[str]:
    """The tokens themselves (for tests, docs and debugging; the pipeline only hashes)."""
    return WORD_RE.findall(text.lower())


def shingle_strings(text: str, ngram: int = 5) -> set[str]:
    """The reference shingle set as strings, exactly as the evaluation generator builds it."""
    words = tokens(text)
    if len(words) < ngram:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def exact_key(tokens_hashed: np.ndarray) -> bytes:
    """16-byte key of the normalised text (its token sequence): equal keys = exact duplicates."""
    return hashlib.blake2b(tokens_hashed.astype("<u8").tobytes(), digest_size=16).digest()


def jaccard(shingles_a: np.ndarray, shingles_b: np.ndarray) -> float:
    """Exact Jaccard of two sorted unique hash arrays, one dtype (two empty sets: 0)."""
    if shingles_a.size == 0 or shingles_b.size == 0:
        return 0.0
    if shingles_a.size > shingles_b.size:
        shingles_a, shingles_b = shingles_b, shingles_a
    where = np.searchsorted(shingles_b, shingles_a)
    where[where == shingles_b.size] = 0
    shared = int(np.count_nonzero(shingles_b[where] == shingles_a))
    return shared / (shingles_a.size + shingles_b.size - shared)


def to_bytes(shingles: np.ndarray) -> bytes:
    return shingles.astype("<u8").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u8")


def to_bytes32(shingles: np.ndarray) -> bytes:
    """The set cut to the low 32 bits of each hash (sorted, unique), as bytes."""
    return sorted_unique(shingles.astype(np.uint32)).astype("<u4").tobytes()


def from_bytes32(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4")
