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
    from langdetect.lang_detect_exception import LangDetectException

    detector = _get_factory().create()
    detector.append(text[:max_chars] if max_chars > 0 else text)
    try:
        ranked = detector.get_probabilities()
    except LangDetectException:
        return "unknown", 0.0
    if not ranked:
        return "unknown", 0.0
    return ranked[0].lang, float(ranked[0].prob)
