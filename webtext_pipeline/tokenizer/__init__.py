"""The tokenizer stage: a byte-level BPE trained on the corpus, and the token files.

Modules (read in this order): ``bytelevel`` (GPT-2's byte alphabet, regex and
file formats), ``docs`` (reading the shards a batch at a time), ``encoder``
(``Encoder``: tiktoken with our ranks, lossless; GPT-2's own files; writing a
tokenizer folder), ``training`` (the capped deterministic sample and the BPE
trainer), ``corpus`` (the parallel tokenization into ``train.bin`` / ``val.bin``)
and ``commands`` (argparse options and runners for the CLI).

The public API is importable from here; importing the package itself is cheap
(the modules load on first use), so the CLI can build its parser without
numpy, pyarrow, tokenizers or tiktoken.

    train_tokenizer(docs_dir, out_dir, vocab_size=50257, max_train_bytes=256 << 20, seed=0)
    load_encoder(tokenizer_dir_or_"gpt2") -> Encoder   # .encode / .decode / .eot_id
    tokenize_corpus(docs_dir, tokenizer_dir_or_"gpt2", out_dir, workers=None)
    write_gpt2_tokenizer(out_dir)                      # GPT-2's files, same formats
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "EOT": "bytelevel",
    "GPT2_PATTERN": "bytelevel",
    "TokenizerError": "bytelevel",
    "Encoder": "encoder",
    "load_encoder": "encoder",
    "write_gpt2_tokenizer": "encoder",
    "write_tokenizer_dir": "encoder",
    "train_tokenizer": "training",
    "DEFAULT_VOCAB_SIZE": "bytelevel",
    "DEFAULT_MAX_TRAIN_BYTES": "bytelevel",
    "tokenize_corpus": "corpus",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
