"""Language identification with langdetect: seeded, thread-safe, on a bounded prefix.

langdetect's module-level `detect()` builds its global factory lazily without
a lock (a second thread can see a half-loaded factory) and draws from a
detector whose seed comes from the class attribute. Here one factory is loaded
once under a lock with seed 0; each call makes its own Detector, whose
`random.Random` is reseeded per call, so the answer depends only on the text.

Cost grows with the text (langdetect runs two regexes over all of it before
truncating), so only the first `max_chars` characters are passed in; on the
dev pages the decision at 1,000 characters matched the full-text decision on
every page (docs/extraction.md).
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_factory = None


def _get_factory():
    global _factory
    if _factory is None:
        with _lock:
            if _factory is None:
                from langdetect import DetectorFactory
                from langdetect.detector_factory import PROFILES_DIRECTORY

                DetectorFactory.seed = 0  # for any other caller of langdetect in this process
                factory = DetectorFactory()
                factory.load_profile(PROFILES_DIRECTORY)
                factory.set_seed(0)
                _factory = factory
    return _factory


def detect_language(text: str, max_chars: int = 1000) -> tuple[str, float]:
    """(language code, probability) of the most likely language; ("unknown", 0.0) if none."""
    detector = _get_factory().create()
    detector.append(text[:max_chars] if max_chars > 0 else text)
    ranked = _probabilities(detector)
    if not ranked:
        return "unknown", 0.0
    return ranked[0].lang, float(ranked[0].prob)


# langdetect's Detector._detect_block, the same arithmetic in the same order with
# the detector's own random stream, written for CPython: n-grams are extracted
# with each character's normalisation looked up once per process (langdetect
# classifies the character's Unicode block for every character of every call),
# and the per-language products and the normalisation are list comprehensions
# instead of indexed loops. The probabilities are bit-for-bit langdetect's
# (tests/test_clean.py compares them on real and multilingual texts); about
# twice as fast. If langdetect's internals move, its own code runs.
_normalized: dict[str, str] = {}
_arrays: dict = {}  # n-gram -> its per-language probabilities as an array


def _probabilities(detector) -> list | None:
    try:
        ngrams = _extract_ngrams(detector)
        if not ngrams:
            return None
        detector.langprob = _detect_block(detector, ngrams)
        return detector.get_probabilities()
    except (AttributeError, ImportError):  # pragma: no cover - langdetect changed
        return reference_probabilities(detector)


def reference_probabilities(detector) -> list | None:
    """langdetect's own Detector.get_probabilities (None when it finds no features)."""
    from langdetect.lang_detect_exception import LangDetectException

    detector.langprob = None
    try:
        return detector.get_probabilities()
    except LangDetectException:
        return None


def _extract_ngrams(detector) -> list[str]:
    """Detector.cleaning_text + Detector._extract_ngrams (NGram.add_char inlined)."""
    from langdetect.utils.ngram import NGram

    detector.cleaning_text()
    known = detector.word_lang_prob_map
    normalized = _normalized
    result: list[str] = []
    append = result.append
    grams, capital = " ", False
    for ch in detector.text:
        norm = normalized.get(ch)
        if norm is None:
            norm = normalized[ch] = NGram.normalize(ch)
        last = grams[-1]
        if last == " ":
            grams, capital = " ", False
            if norm == " ":
                continue
        elif len(grams) >= 3:
            grams = grams[1:]
        grams += norm
        if norm.isupper():
            if last.isupper():
                capital = True
        else:
            capital = False
        if capital:
            continue
        w = grams[-1]
        if w != " " and w in known:
            append(w)
        if len(grams) >= 2:
            w = grams[-2:]
            if w in known:
                append(w)
            if len(grams) >= 3:
                w = grams[-3:]
                if w in known:
                    append(w)
    return result


def _detect_block(detector, ngrams: list[str]) -> list[float]:
    """Detector._detect_block after the n-grams: the same random draws and float operations.

    Element-wise numpy products and divisions are the same IEEE operations as
    langdetect's loops; the one sum is taken in Python, in langdetect's order.
    """
    import numpy as np

    known, arrays = detector.word_lang_prob_map, _arrays
    n_trial, n_langs = detector.n_trial, len(detector.langlist)
    langprob = np.zeros(n_langs)
    rand = detector.random
    rand.seed(detector.seed)
    choice = rand.choice
    limit, threshold = detector.ITERATION_LIMIT, detector.CONV_THRESHOLD
    factor = np.empty(n_langs)
    add, multiply, divide = np.add, np.multiply, np.true_divide
    for _ in range(n_trial):
        prob = np.array(detector._init_probability(), dtype=float)
        alpha = detector.alpha + rand.gauss(0.0, 1.0) * detector.ALPHA_WIDTH
        weight = alpha / detector.BASE_FREQ
        i = 0
        while True:
            word = choice(ngrams)
            row = arrays.get(word)
            if row is None:
                row = arrays[word] = np.array(known[word], dtype=float)
            add(weight, row, out=factor)
            multiply(prob, factor, out=prob)
            if i % 5 == 0:
                divide(prob, sum(prob.tolist()), out=prob)
                if max(0.0, prob.max()) > threshold or i >= limit:
                    break
            i += 1
        langprob += prob / n_trial
    return langprob.tolist()
