"""Document-level quality rules (after Gopher / C4 / FineWeb), each a (reason, detail) or None.

Every rule reads one `TextStats`, computed in a single pass over the text, and
one threshold from `CleanConfig`. `firing_rules` reports every rule a text
fails (not only the first), which is how docs/extraction.md measures what each
rule would remove from real article text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# Gopher's stop-word rule: English text uses at least two of these.
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "‣", "◦", "⁃", "●", "▪", "■", "►", "- ", "* ", "· ", "– ")
_EDGE_PUNCT = "\"'“”‘’.,;:!?()[]{}<>«»"
_CODE_LINE = re.compile(
    r"(?:[;{}]|\)\s*;?)$|^(?:[}\])]|#include\b|import \w|from \S+ import\b|def \w+\(|"
    r"function\b|var \w|let \w|const \w|return\b|public |private |class \w+[:({]|"
    r"if \(|for \(|while \(|<\?php|<\w+[^>]*>$|\$ \w|>>> )"
)
_DROP_CODE_SYMBOLS = str.maketrans("", "", "{}[]();=<>$\\/_|&*")
_LETTER = re.compile(r"[^\W\d_]")
WIKIPEDIA_MARKERS = (
    "from wikipedia, the free encyclopedia",
    "material from the wikipedia article",
    "text is available under the creative commons attribution-sharealike license; "
    "additional terms may apply",
)


@dataclass(slots=True)
class TextStats:
    n_chars: int
    n_words: int
    n_lines: int
    stop_words: int  # distinct STOP_WORDS present
    mean_word_len: float
    alpha_word_share: float
    symbol_ratio: float  # ('#' + '...' + '…') per word
    bullet_line_share: float
    ellipsis_line_share: float
    dup_line_char_share: float
    dup_ngram_char_share: float  # characters of words inside a repeated n-gram
    code_line_share: float
    lower: str


def _dup_ngram_char_share(words: list[str], n: int) -> float:
    if len(words) < n + 1:
        return 0.0
    grams = list(zip(*(words[i : len(words) - n + 1 + i] for i in range(n)), strict=True))
    counts = Counter(grams)
    if len(counts) == len(grams):
        return 0.0
    covered = bytearray(len(words))
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[i : i + n] = b"\x01" * n
    total = sum(len(w) for w in words)
    dup = sum(len(w) for w, c in zip(words, covered, strict=True) if c)
    return dup / total if total else 0.0


def text_stats(text: str, ngram_n: int = 5, ngram_max_words: int = 5000) -> TextStats:
    words = text.split()
    n_words = len(words)
    lines = text.split("\n")
    n_lines = len(lines)
    lower = text.lower()
    stripped = [w.strip(_EDGE_PUNCT) for w in words]
    lowered = {w.lower() for w in stripped}
    letters = [w for w in stripped if w]
    mean_len = sum(map(len, letters)) / len(letters) if letters else 0.0
    alpha = sum(1 for w in words if _LETTER.search(w))
    symbols = text.count("#") + text.count("...") + text.count("…")
    bullets = sum(1 for line in lines if line.lstrip().startswith(BULLETS))
    ellipses = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
    line_counts = Counter(lines)
    dup_chars = sum(len(line) * (c - 1) for line, c in line_counts.items() if c > 1)
    total_line_chars = sum(map(len, lines))
    code = sum(1 for line in lines if _is_code_line(line))
    return TextStats(
        n_chars=len(text),
        n_words=n_words,
        n_lines=n_lines,
        stop_words=len(STOP_WORDS & lowered),
        mean_word_len=mean_len,
        alpha_word_share=alpha / n_words if n_words else 0.0,
        symbol_ratio=symbols / n_words if n_words else 0.0,
        bullet_line_share=bullets / n_lines if n_lines else 0.0,
        ellipsis_line_share=ellipses / n_lines if n_lines else 0.0,
        dup_line_char_share=dup_chars / total_line_chars if total_line_chars else 0.0,
        dup_ngram_char_share=_dup_ngram_char_share(words[:ngram_max_words], ngram_n),
        code_line_share=code / n_lines if n_lines else 0.0,
        lower=lower,
    )


def _is_code_line(line: str) -> bool:
    line = line.strip()
    if not line:
        return False
    if _CODE_LINE.search(line):
        return True
    symbols = len(line) - len(line.translate(_DROP_CODE_SYMBOLS))
    return len(line) >= 8 and symbols / len(line) > 0.15


# --- the rules, in the order clean_record applies them after the language check


def rule_wikipedia_text(s: TextStats, c) -> tuple[str, str] | None:
    for marker in c.wikipedia_markers:
        if marker in s.lower:
            return "wikipedia_text", marker
    return None


def rule_lorem_ipsum(s: TextStats, c) -> tuple[str, str] | None:
    if "lorem ipsum" in s.lower:
        return "lorem_ipsum", ""
    return None


def rule_stop_words(s: TextStats, c) -> tuple[str, str] | None:
    if s.stop_words < c.min_stop_words:
        return "few_stop_words", f"{s.stop_words} of {sorted(STOP_WORDS)}"
    return None


def rule_word_length(s: TextStats, c) -> tuple[str, str] | None:
    lo, hi = c.mean_word_length
    if not lo <= s.mean_word_len <= hi:
        return "word_length", f"mean {s.mean_word_len:.2f} outside [{lo}, {hi}]"
    return None


def rule_alpha_words(s: TextStats, c) -> tuple[str, str] | None:
    if s.alpha_word_share < c.min_alpha_word_share:
        return "few_alpha_words", f"{s.alpha_word_share:.2f} < {c.min_alpha_word_share}"
    return None


def rule_symbol_ratio(s: TextStats, c) -> tuple[str, str] | None:
    if s.symbol_ratio > c.max_symbol_ratio:
        return "symbol_ratio", f"{s.symbol_ratio:.3f} > {c.max_symbol_ratio}"
    return None


def rule_bullet_lines(s: TextStats, c) -> tuple[str, str] | None:
    if s.bullet_line_share > c.max_bullet_line_share:
        return "bullet_lines", f"{s.bullet_line_share:.2f} > {c.max_bullet_line_share}"
    return None


def rule_ellipsis_lines(s: TextStats, c) -> tuple[str, str] | None:
    if s.ellipsis_line_share > c.max_ellipsis_line_share:
        return "ellipsis_lines", f"{s.ellipsis_line_share:.2f} > {c.max_ellipsis_line_share}"
    return None


def rule_repeated_lines(s: TextStats, c) -> tuple[str, str] | None:
    if s.dup_line_char_share > c.max_dup_line_char_share:
        return "repeated_lines", f"{s.dup_line_char_share:.2f} > {c.max_dup_line_char_share}"
    return None


def rule_repeated_ngrams(s: TextStats, c) -> tuple[str, str] | None:
    if s.dup_ngram_char_share > c.max_dup_ngram_char_share:
        return (
            "repeated_ngrams",
            f"{s.dup_ngram_char_share:.2f} > {c.max_dup_ngram_char_share} ({c.ngram_n}-grams)",
        )
    return None


def rule_code_like(s: TextStats, c) -> tuple[str, str] | None:
    if s.code_line_share > c.max_code_line_share:
        return "code_like", f"{s.code_line_share:.2f} > {c.max_code_line_share}"
    return None


RULES = (
    rule_wikipedia_text,
    rule_lorem_ipsum,
    rule_code_like,
    rule_stop_words,
    rule_word_length,
    rule_alpha_words,
    rule_symbol_ratio,
    rule_bullet_lines,
    rule_ellipsis_lines,
    rule_repeated_lines,
    rule_repeated_ngrams,
)


def first_failing_rule(s: TextStats, config) -> tuple[str, str] | None:
    for rule in RULES:
        hit = rule(s, config)
        if hit is not None:
            return hit
    return None


def firing_rules(s: TextStats, config) -> list[tuple[str, str]]:
    """Every rule the text fails, in order (for measurement)."""
    return [hit for rule in RULES if (hit := rule(s, config)) is not None]
