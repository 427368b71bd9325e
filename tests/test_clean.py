"""Cleaning: normalisation, each quality rule on a crafted text and on real article text,
language identification (seeded, thread-safe), and the record plumbing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from webtext_pipeline.clean import (
    CLEAN_REASONS,
    DEFAULT_CONFIG,
    CleanConfig,
    clean_record,
    clean_text,
    detect_language,
    firing_rules,
    normalize_text,
    text_stats,
)
from webtext_pipeline.records import Reject

DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "extraction" / "dev"
needs_dev = pytest.mark.skipif(not DEV.is_dir(), reason="../shared/eval/extraction/dev not present")

ENGLISH = (
    "The old bridge over the river was closed on Monday after engineers found cracks in two "
    "of its stone arches. The town council said that the repairs would take at least three "
    "months and that a ferry would carry people across the water in the meantime. Shop owners "
    "on the north bank worry that fewer visitors will come to the market, which has been held "
    "beside the bridge every Saturday since the nineteenth century. The council has promised to "
    "publish a plan with the costs of the work before the end of the month, and it will hold a "
    "public meeting in the library on Thursday evening so that residents can ask questions.\n"
    "Engineers with the regional authority have been inspecting the structure since the spring "
    "floods, when the water rose higher than at any time in the past forty years. They say the "
    "bridge is not in danger of falling, but that heavy lorries must not use it until the arches "
    "have been strengthened with steel and new mortar."
)
GERMAN = (
    "Die alte Brücke über den Fluss wurde am Montag gesperrt, nachdem Ingenieure Risse in zwei "
    "ihrer Steinbögen gefunden hatten. Der Gemeinderat teilte mit, dass die Reparaturen "
    "mindestens drei Monate dauern würden und dass in der Zwischenzeit eine Fähre die Menschen "
    "über das Wasser bringen werde. Die Ladenbesitzer am Nordufer befürchten, dass weniger "
    "Besucher auf den Markt kommen, der seit dem neunzehnten Jahrhundert jeden Samstag neben der "
    "Brücke abgehalten wird. Der Rat will noch in diesem Monat einen Plan mit den Kosten vorlegen."
)
FRENCH = (
    "Le vieux pont sur la rivière a été fermé lundi après que des ingénieurs ont découvert des "
    "fissures dans deux de ses arches en pierre. Le conseil municipal a déclaré que les "
    "réparations dureraient au moins trois mois et qu'un bac transporterait les habitants d'une "
    "rive à l'autre en attendant. Les commerçants de la rive nord craignent que le marché, qui "
    "se tient chaque samedi près du pont depuis le dix-neuvième siècle, attire moins de visiteurs. "
    "Le conseil promet de publier avant la fin du mois un plan détaillant le coût des travaux."
)
JAPANESE = (
    "川に架かる古い橋は、技術者が二つの石造りのアーチにひびを見つけたため、月曜日に通行止めになった。"
    "町議会によると、修理には少なくとも三か月かかり、その間は渡し船が人々を対岸へ運ぶという。"
    "北岸の商店主たちは、十九世紀から毎週土曜日に橋のそばで開かれてきた市場に来る客が減ることを心配している。"
    "議会は今月末までに工事費用を示した計画を公表し、木曜日の夜には図書館で住民説明会を開く予定だ。"
    "専門家は春の洪水以来、橋の状態を調べている。"
)


def real_english_texts() -> list[str]:
    ids = [
        "rd-guardian-1",
        "rd-medium-1",
        "sh-0d46122928b6f468",
        "sh-851498a2b9f4f0b5",
        "rd-seattletimes-1",
        "sh-1ee91d1fce65e09b",
    ]
    return [normalize_text((DEV / f"{i}.txt").read_text(encoding="utf-8")) for i in ids]


# --- normalisation ------------------------------------------------------------------------


def test_normalisation():
    assert (
        normalize_text("Caf\u00c3\u00a9 au lait costs \u00e2\u0082\u00ac3")
        == "Café au lait costs €3"
    )
    assert normalize_text("It\u00e2\u0080\u0099s fine") == "It’s fine"
    # curly quotes, full-width text and ligatures are left as written
    assert normalize_text("“Quoted” ＡＢＣ ﬁne") == "“Quoted” ＡＢＣ ﬁne"
    assert normalize_text("e\u0301t\u00e9") == "été"  # NFC
    assert normalize_text("a\u00a0\u00a0b\u200bc\u00add\tE\r\n\r\n  F  \u2028G") == "a bcd E\nF\nG"
    assert normalize_text("x\x00y\x1bz") == "xyz"


def test_boilerplate_lines_are_removed_and_consent_walls_rejected():
    consent = (
        "We use cookies to improve your experience. By continuing to browse the site you agree "
        "to our use of cookies. Read our privacy policy and terms of use."
    )
    kept = clean_text(ENGLISH + "\n" + consent)
    assert kept.reason is None and "cookies" not in kept.text
    wall = clean_text("\n".join([consent] * 6 + ["Short article text here."]))
    assert wall.reason == "boilerplate"


def test_an_article_about_cookies_keeps_its_sentences():
    text = (
        ENGLISH
        + "\nThe bakery on the north bank says it will keep selling cookies during the works."
    )
    assert "selling cookies" in clean_text(text).text


# --- length and language ----------------------------------------------------------------


def test_too_short():
    assert clean_text("A short note.").reason == "too_short"
    words_80 = " ".join(["the river and the bridge"] * 16)
    result = clean_text(words_80)
    assert result.reason == "too_short" and result.detail == "80 words < 100"


@pytest.mark.parametrize(("text", "lang"), [(GERMAN, "de"), (FRENCH, "fr"), (JAPANESE, "ja")])
def test_other_languages_are_rejected_with_the_language_recorded(text, lang):
    result = clean_text(text)
    assert result.reason == "not_english"
    assert result.lang == lang and result.detail.startswith(lang + " ")
    rec = clean_record({"url": "https://example.com/x", "text": text})
    assert rec == Reject("clean", "https://example.com/x", "not_english", result.detail)


def test_english_is_kept_with_lang_and_score():
    doc = clean_record({"url": "https://example.com/a", "text": ENGLISH, "title": "t"})
    assert isinstance(doc, dict)
    assert doc["lang"] == "en" and doc["lang_score"] >= DEFAULT_CONFIG.lang_threshold
    assert doc["n_chars"] == len(doc["text"]) and doc["n_words"] == len(doc["text"].split())
    assert doc["title"] == "t"


def test_language_threshold_is_applied():
    strict = dataclasses.replace(DEFAULT_CONFIG, lang_threshold=1.01)
    assert clean_text(ENGLISH, strict).reason == "not_english"


def test_language_id_is_deterministic_across_calls_threads_and_processes():
    texts = [ENGLISH, GERMAN, FRENCH, JAPANESE, ENGLISH[:300] + GERMAN[:300]] * 8
    sequential = [detect_language(t, 500) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda t: detect_language(t, 500), texts))
    assert threaded == sequential
    code = (
        "import json, sys; from webtext_pipeline.clean import detect_language; "
        "print(json.dumps([detect_language(t, 500) for t in json.load(sys.stdin)]))"
    )
    import json

    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(texts[:5]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [tuple(x) for x in json.loads(out)] == sequential[:5]


def test_language_probabilities_are_langdetects_own_bit_for_bit():
    from webtext_pipeline.clean import lang

    texts = [ENGLISH, GERMAN, FRENCH, JAPANESE, ENGLISH[:300] + GERMAN[:300], ENGLISH.upper()]
    texts += [
        "Привет мир, как дела? Это простой тест для определения языка текста.",
        "这是一个测试句子，用于语言检测。我们希望它能正确识别中文。",
        "Tiếng Việt có dấu: Đại học Quốc gia Hà Nội là một trường đại học.",
        "مرحبا بالعالم، هذا اختبار بسيط لتحديد لغة النص.",
        "Şişli'de bir ţară românească, şi încă una.",
        "12345 67890",
        "",
    ]
    if DEV.is_dir():
        texts += [
            normalize_text(path.read_text(encoding="utf-8"))[:500]
            for path in sorted(DEV.glob("*.txt"))[:40]
        ]
    factory = lang._get_factory()
    for text in texts:
        ours, theirs = factory.create(), factory.create()
        ours.append(text)
        theirs.append(text)
        expected = lang.reference_probabilities(theirs)
        got = lang._probabilities(ours)
        assert [(x.lang, x.prob) for x in got or []] == [(x.lang, x.prob) for x in expected or []]


# --- each quality rule fires on its crafted text ------------------------------------------

CRAFTED = {
    "wikipedia_text": ENGLISH + "\nFrom Wikipedia, the free encyclopedia",
    "lorem_ipsum": ENGLISH + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "few_stop_words": "\n".join(
        f"Product {i}: stainless steel kettle, 1.7 litre, blue, fast boil, cordless base, "
        f"price {i}9 dollars, free delivery, five stars."
        for i in range(12)
    ),
    "word_length": " ".join(["the a to of is it"] * 30) + " and with that have",
    "few_alpha_words": "the and of to with that "
    + " ".join(f"{i} {i * 3}.5 ${i}" for i in range(60)),
    "symbol_ratio": ENGLISH + "\n" + " ".join(["#news #bridge #river"] * 20),
    "bullet_lines": "\n".join(
        f"• Item {i} of the list is about the river and the bridge with the town" for i in range(30)
    ),
    "ellipsis_lines": "\n".join(
        f"Headline {i} about the river and the bridge that the town have with..." for i in range(30)
    ),
    "repeated_lines": "\n".join(
        ["Buy the best bridge tickets here and have fun with the whole family today."] * 10
        + [ENGLISH]
    ),
    "repeated_ngrams": " ".join(
        [
            ENGLISH.split("\n")[0],
            "and the best bridge in the whole town is the one with the arches"
            " that have been there for years and years " * 12,
        ]
    ),
    "code_like": "\n".join(
        ["the function and the loop that we have with the code to run:"]
        + [f"value_{i} = compute_total(alpha, beta, gamma);" for i in range(20)]
        + ["for (int i = 0; i < n; i++) {", "  total += x[i];", "}"]
    ),
}


@pytest.mark.parametrize("reason", sorted(CRAFTED))
def test_each_rule_fires_on_its_crafted_text(reason):
    assert reason in CLEAN_REASONS
    result = clean_text(CRAFTED[reason])
    assert result.reason == reason, (result.reason, result.detail)


@needs_dev
def test_no_rule_fires_on_real_article_text():
    for text in real_english_texts():
        result = clean_text(text)
        assert result.reason is None, (result.reason, result.detail, text[:80])
        assert firing_rules(text_stats(text), DEFAULT_CONFIG) == []


def test_every_rule_has_a_documented_reason_and_config_is_picklable():
    import pickle

    assert set(CRAFTED) | {"boilerplate", "too_short", "not_english"} == set(CLEAN_REASONS)
    cfg = CleanConfig(min_words=50)
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_clean_record_is_deterministic():
    doc = {"url": "https://example.com/a", "text": "  " + ENGLISH.replace(" ", "\u00a0", 3)}
    assert clean_record(doc) == clean_record(dict(doc))
    assert clean_record(doc)["text"] == normalize_text(ENGLISH)


def test_reason_vocabulary_matches_the_floor_one_copy():
    from webtext_pipeline.records import REASONS

    assert REASONS["clean"] is CLEAN_REASONS
