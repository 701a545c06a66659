"""Cleaning steps and their per-step counts, on hand-made documents."""

from __future__ import annotations

import random

import pytest

from lowres.data.text.cleaning import CleaningConfig, MinHashDeduplicator, clean, clean_whitespace, script_share
from lowres.data.text.readers import Document

_OFF = dict(normalization=None, clean_whitespace=False, exact_dedup=False)


def _docs(*texts, lang="eng_Latn"):
    return [Document(t, lang, "c", str(i)) for i, t in enumerate(texts)]


def _words(rng, n):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 8))) for _ in range(n))


def test_nfkc_folds_compatibility_characters_nfc_does_not():
    text = "ﬁne ２ e\u0301"  # ligature, fullwidth digit, decomposed é
    (nfc,), report = clean(_docs(text), CleaningConfig(normalization="NFC"))
    (nfkc,), _ = clean(_docs(text), CleaningConfig(normalization="NFKC"))
    assert nfc.text == "ﬁne ２ é"
    assert nfkc.text == "fine 2 é"
    assert report.modified["normalization"] == 1
    with pytest.raises(ValueError, match="normalization"):
        CleaningConfig(normalization="NFD")


def test_control_characters_and_whitespace():
    # NUL, ESC, DEL and U+0090 vanish; NEL (U+0085) is a whitespace control, so it becomes a space.
    assert clean_whitespace("a\x00b\x1b\x85c  \u00a0 d\t\te\r\nf\x7f\u0090") == "ab c d\t\te\nf"
    assert clean_whitespace("a\n\n\n\nb\x0cc") == "a\n\nb c"
    assert clean_whitespace(" a \n b ", keep_newlines=False) == "a b"
    kept, report = clean(_docs("x\x01y", "\x02 \x03", "ok"), CleaningConfig())
    assert [d.text for d in kept] == ["xy", "ok"]
    assert report.dropped["whitespace"] == 1 and report.modified["whitespace"] == 2


def test_length_filters_count_each_side():
    kept, report = clean(_docs("ab", "abcd", "abcdefgh", "abcde"), CleaningConfig(min_chars=3, max_chars=5))
    assert [d.text for d in kept] == ["abcd", "abcde"]
    assert (report.dropped["too_short"], report.dropped["too_long"], report.kept, report.input) == (1, 1, 2, 4)


def test_exact_dedup_keeps_the_first():
    docs = _docs("same text", "other", "same  text", "same text")
    kept, report = clean(docs, CleaningConfig())
    assert [d.doc_id for d in kept] == ["0", "1"]  # "same  text" equals after whitespace cleanup
    assert report.dropped["exact_duplicate"] == 2
    kept, report = clean(docs, CleaningConfig(**_OFF))
    assert len(kept) == 4 and report.dropped["exact_duplicate"] == 0


def test_near_dedup_drops_one_word_variant_keeps_unrelated():
    rng = random.Random(1)
    long_doc = _words(rng, 120)
    words = long_doc.split()
    words[60] = "replaced"
    variant = " ".join(words)
    unrelated = [_words(rng, 120) for _ in range(5)]
    docs = _docs(long_doc, *unrelated, variant)
    kept, report = clean(docs, CleaningConfig(near_dedup=True))
    assert [d.doc_id for d in kept] == ["0", "1", "2", "3", "4", "5"]
    assert report.dropped["near_duplicate"] == 1
    kept, _ = clean(docs, CleaningConfig())
    assert len(kept) == 7  # exact dedup alone does not catch the variant


def test_minhash_is_deterministic_for_a_seed():
    a, b = MinHashDeduplicator(seed=3), MinHashDeduplicator(seed=3)
    assert (a.signature("some text here") == b.signature("some text here")).all()
    assert a.is_duplicate("some text here") is False and a.is_duplicate("some text here") is True


def test_script_check_drops_latin_text_labelled_punjabi():
    texts = ["ਸਤ ਸ੍ਰੀ ਅਕਾਲ, ਤੁਸੀਂ ਕਿਵੇਂ ਹੋ?", "sat sri akal, tusi kiven ho?", "ਪੰਜਾਬ Punjab ਦੀ ਰਾਜਧਾਨੀ", "123 !"]
    docs = _docs(*texts, lang="pan_Guru")
    kept, report = clean(docs, CleaningConfig(script_check=True))
    assert [d.doc_id for d in kept] == ["0", "2", "3"]  # no letters: nothing to judge
    assert report.dropped["script"] == 1
    assert script_share("ਸਤ ਸ੍ਰੀ", "Guru") == 1.0
    assert script_share("中文", "Hans") == 1.0 and script_share("abc", "Hans") == 0.0


def test_report_table_lists_every_step():
    _, report = clean(_docs("a", "a", ""), CleaningConfig(min_chars=1))
    table = report.table()
    for name in ("input", "whitespace", "too_short", "exact_duplicate", "near_duplicate", "script", "kept"):
        assert name in table
    assert report.input == 3 and report.kept == 1
    assert report.kept + sum(report.dropped.values()) == report.input


def test_min_score_drops_low_and_unscored_translationese():
    docs = [Document("kept", "pan_Guru", "c", "0", {"score": 0.9}),
            Document("low", "pan_Guru", "c", "1", {"score": 0.1}),
            Document("unscored", "pan_Guru", "c", "2", {"translator": "mt"}),
            Document("plain", "pan_Guru", "c", "3")]
    kept, report = clean(docs, CleaningConfig(min_score=0.5, **_OFF))
    assert [d.text for d in kept] == ["kept"]
    assert report.dropped["min_score"] == 3 and "dropped: min_score" in report.table()
    assert len(clean(docs, CleaningConfig(**_OFF))[0]) == 4  # off by default


def test_cleaning_settings_are_config_errors():
    from lowres.errors import ConfigError

    with pytest.raises(ConfigError, match="normalization"):
        CleaningConfig(normalization="NFD")
