"""Unicode and whitespace normalisation, and removal of consent/legal boilerplate lines.

Cheap first: NFC, control and invisible characters, whitespace. Mojibake
("CafÃ©", "â€™") is repaired with ftfy, but ftfy only runs when a cheap regex
sees the byte patterns mojibake leaves (on the dev pages it never fires), and
with its options that *change* clean text turned off (curly quotes,
full-width characters and ligatures stay as the page wrote them).
"""

from __future__ import annotations

import re
import unicodedata

# UTF-8 read as cp1252/latin-1: a lead byte Â Ã Ä Å Æ Ç Ð Ñ Ø ... followed by a
# continuation byte shown as a cp1252/latin-1 character.
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00df\u00e0-\u00ef][\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021"
    "\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc"
    "\u2122\u0161\u203a\u0153\u017e\u0178]"
)
# C0/C1 controls except \t \n; zero-width space, BOM, soft hyphen, word joiner, bidi marks.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b\u2060\ufeff"
    "\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_SPACES = re.compile("[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\u0085\u000b\u000c]")

# Lines that are consent/legal boilerplate rather than article text.
CONSENT_LINE = re.compile(
    r"\b(?:we|this (?:site|website)|our (?:site|website|partners)) (?:use|uses|store) cookies\b|"
    r"\buse of cookies\b|\bcookie (?:policy|settings|preferences|consent|notice)\b|"
    r"\baccept (?:all )?cookies\b|\bby (?:continuing to|using) (?:use|browse|this site|our)\b.*"
    r"\b(?:agree|consent|accept)\b|\bprivacy (?:policy|notice|statement)\b|"
    r"\bterms (?:of (?:use|service)|and conditions)\b",
    re.IGNORECASE,
)


def fix_mojibake(text: str) -> str:
    if not _MOJIBAKE_HINT.search(text):
        return text
    import ftfy

    config = ftfy.TextFixerConfig(
        unescape_html=False,
        uncurl_quotes=False,
        fix_character_width=False,
        fix_latin_ligatures=False,
        explain=False,
    )
    return ftfy.fix_text(text, config)


def normalize_text(text: str, fix_encoding: bool = True) -> str:
    """NFC, mojibake repair, no invisible characters, single spaces, one paragraph per line."""
    if fix_encoding:
        text = fix_mojibake(text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _INVISIBLE.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def split_boilerplate(text: str, max_words: int) -> tuple[str, int]:
    """(text without consent/legal lines of at most `max_words` words, chars removed)."""
    if not CONSENT_LINE.search(text):
        return text, 0
    kept, removed = [], 0
    for line in text.split("\n"):
        if CONSENT_LINE.search(line) and len(line.split()) <= max_words:
            removed += len(line)
        else:
            kept.append(line)
    return "\n".join(kept), removed
