"""datasketch MinHash signatures, computed for a whole shingle set at once.

The permutations are datasketch's own (`MinHash(num_perm, seed,
scheme="affine32").permutations`, datasketch >= 2.0): each 64-bit shingle hash
is cut to its low 32 bits (datasketch's affine32 input), pre-mixed with the
32-bit MurmurHash3 finalizer, and permuted as `a * h + b mod 2^32`. So
`signature(shingles)` equals `MinHash(..., hashfunc=low32(shingle_hash)).hashvalues`
after `update_batch` over the same shingles, value for value (the tests check
it), and `LeanMinHash(seed=seed, hashvalues=sig, scheme="affine32")` turns one
into a datasketch object. The difference is speed: one (chunk x num_perm) numpy
product per document instead of one Python call per shingle.

Memory: at most CHUNK x num_perm x 4 bytes of scratch (4 MiB at 128
permutations), whatever the document's length.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SCHEME = "affine32"
CHUNK = 8192
MAX_HASH = np.uint32(0xFFFFFFFF)
_U32 = np.uint32


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's (a, b) permutation parameters as two read-only uint32 arrays."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    a = np.ascontiguousarray(a, dtype=np.uint32)
    b = np.ascontiguousarray(b, dtype=np.uint32)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def fmix32(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        values = values ^ (values >> _U32(16))
        values = values * _U32(0x85EBCA6B)
        values = values ^ (values >> _U32(13))
        values = values * _U32(0xC2B2AE35)
        return values ^ (values >> _U32(16))


def signature(shingles: np.ndarray, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """The MinHash signature (uint32[num_perm]) of a shingle-hash array; all 2^32-1 if empty."""
    a, b = permutations(num_perm, seed)
    result = np.full(num_perm, MAX_HASH, dtype=np.uint32)
    column_b = b[:, None]
    with np.errstate(over="ignore"):
        for start in range(0, shingles.size, CHUNK):
            mixed = fmix32(shingles[start : start + CHUNK].astype(np.uint32))
            permuted = np.multiply.outer(a, mixed)
            permuted += column_b
            np.minimum(result, permuted.min(axis=1), out=result)
    return result


def low32(value: int) -> int:
    """The 32-bit input datasketch's affine32 scheme takes: the low half of a 64-bit hash."""
    return value & 0xFFFFFFFF


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """datasketch's estimate: the fraction of permutations whose minima agree."""
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.size


def to_bytes(sig: np.ndarray) -> bytes:
    return sig.astype("<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4")
