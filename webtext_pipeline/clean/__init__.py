"""Stage four: normalise an extracted document, then keep it or reject it with one reason.

`clean_record(doc, config) -> dict | Reject` runs, in order:

1. normalisation (normalize.py): mojibake repair (ftfy, only where mojibake
   is likely), NFC, invisible characters, whitespace; then consent/legal
   boilerplate lines are taken out (a document that is mostly such lines is
   rejected as `boilerplate`);
2. `too_short` when too little text is left to judge;
3. language (lang.py): langdetect on the first `lang_chars` characters,
   seeded; `lang` and `lang_score` are recorded on every kept document;
4. `too_short` again on words (the OpenWebText-equivalent length floor);
5. the quality rules of rules.py, in the order of CLEAN_REASONS.

A document leaves with exactly one fate, so `docs in = docs out + Σ rejects`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from webtext_pipeline.records import CLEAN_REASONS, Reject

from .lang import detect_language
from .normalize import normalize_text, split_boilerplate
from .rules import WIKIPEDIA_MARKERS, firing_rules, first_failing_rule, text_stats

STAGE = "clean"



@dataclass(frozen=True, slots=True)
class CleanConfig:
    """Every threshold of the clean stage (see CLEAN_REASONS and docs/extraction.md)."""

    fix_mojibake: bool = True
    boilerplate_line_max_words: int = 80  # consent/legal lines longer than this are kept
    max_boilerplate_share: float = 0.5  # of the characters
    min_chars: int = 200  # non-space characters, checked before language ID
    min_words: int = 100  # ~128 GPT-2 tokens: English prose runs ~1.3 BPE tokens a word
    lang: str = "en"
    lang_threshold: float = 0.65
    lang_chars: int = 500  # langdetect sees the first this-many characters
    wikipedia_markers: tuple[str, ...] = WIKIPEDIA_MARKERS
    min_stop_words: int = 2
    mean_word_length: tuple[float, float] = (3.0, 10.0)
    min_alpha_word_share: float = 0.8
    max_symbol_ratio: float = 0.1
    max_bullet_line_share: float = 0.9
    max_ellipsis_line_share: float = 0.3
    max_dup_line_char_share: float = 0.2
    ngram_n: int = 10
    ngram_max_words: int = 5000  # repeated n-grams are looked for in the first this-many words
    max_dup_ngram_char_share: float = 0.15
    max_code_line_share: float = 0.5


DEFAULT_CONFIG = CleanConfig()


@dataclass(slots=True)
class Cleaned:
    """The outcome for one text: kept (reason None) or rejected, with what was measured."""

    text: str
    reason: str | None = None
    detail: str = ""
    lang: str = ""
    lang_score: float = 0.0
    n_words: int = 0


def clean_text(
    text: str, config: CleanConfig = DEFAULT_CONFIG, timings: dict[str, float] | None = None
) -> Cleaned:
    """Normalise `text` and decide its fate (the whole clean stage, minus the record plumbing)."""
    clock = time.perf_counter
    t0 = clock()
    text = normalize_text(text, config.fix_mojibake)
    total = len(text)
    text, removed = split_boilerplate(text, config.boilerplate_line_max_words)
    if timings is not None:
        timings["normalize"] = timings.get("normalize", 0.0) + clock() - t0
    if total and removed / total > config.max_boilerplate_share:
        return Cleaned(text, "boilerplate", f"{removed / total:.2f} of the characters")
    nonspace = len(text) - text.count(" ") - text.count("\n")
    if nonspace < config.min_chars:
        return Cleaned(text, "too_short", f"{nonspace} non-space chars < {config.min_chars}")
    t0 = clock()
    lang, score = detect_language(text, config.lang_chars)
    if timings is not None:
        timings["language"] = timings.get("language", 0.0) + clock() - t0
    if lang != config.lang or score < config.lang_threshold:
        return Cleaned(text, "not_english", f"{lang} {score:.3f}", lang, score)
    t0 = clock()
    stats = text_stats(text, config.ngram_n, config.ngram_max_words)
    result = Cleaned(text, None, "", lang, score, stats.n_words)
    if stats.n_words < config.min_words:
        result.reason, result.detail = "too_short", f"{stats.n_words} words < {config.min_words}"
    else:
        hit = first_failing_rule(stats, config)
        if hit is not None:
            result.reason, result.detail = hit
    if timings is not None:
        timings["rules"] = timings.get("rules", 0.0) + clock() - t0
    return result


def clean_record(doc: dict, config: CleanConfig = DEFAULT_CONFIG) -> dict | Reject:
    """An extracted document -> the cleaned document (adding lang, lang_score, n_chars,
    n_words), or a Reject keyed by the document's url."""
    result = clean_text(doc.get("text") or "", config)
    if result.reason is not None:
        return Reject(STAGE, doc.get("url") or "", result.reason, result.detail)
    out = dict(doc)
    out.update(
        text=result.text,
        lang=result.lang,
        lang_score=round(result.lang_score, 6),
        n_chars=len(result.text),
        n_words=result.n_words,
    )
    return out


__all__ = [
    "CLEAN_REASONS",
    "DEFAULT_CONFIG",
    "STAGE",
    "CleanConfig",
    "Cleaned",
    "clean_record",
    "clean_text",
    "detect_language",
    "firing_rules",
    "normalize_text",
    "split_boilerplate",
    "text_stats",
]
