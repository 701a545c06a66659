"""The built-in corpus: coverage, file hygiene, splits, determinism and the build cache."""

import json
import pathlib
import unicodedata

import pytest

from lowres.data.text import builtin_corpus as bc
from lowres.data.text.builtin_corpus import (
    BUILTIN_LANGUAGES,
    LOW_RESOURCE,
    SPLITS,
    BuiltinCorpus,
    build_builtin_corpus,
    default_cache_dir,
    describe_table,
)
from lowres.data.languages import language_name, normalize_language

NON_ENGLISH = [lang for lang in BUILTIN_LANGUAGES if lang != "eng_Latn"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> BuiltinCorpus:
    return build_builtin_corpus(tmp_path_factory.mktemp("cache"), progress=False)


def _lines(path: pathlib.Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")  # strict: fails on invalid UTF-8
    assert text.endswith("\n")
    return text[:-1].split("\n")


def _snapshot(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_language_coverage():
    assert "eng_Latn" in BUILTIN_LANGUAGES
    assert len(BUILTIN_LANGUAGES) >= 16
    assert len(set(BUILTIN_LANGUAGES)) == len(BUILTIN_LANGUAGES)
    assert LOW_RESOURCE <= set(BUILTIN_LANGUAGES)
    assert len(LOW_RESOURCE) >= 10
    assert "eng_Latn" not in LOW_RESOURCE
    for lang in BUILTIN_LANGUAGES:
        assert normalize_language(lang) == lang
    # The corpus and normalize_language agree on the ISO 639-1 macrolanguage codes.
    assert normalize_language("ne") in BUILTIN_LANGUAGES
    assert normalize_language("sw") in BUILTIN_LANGUAGES


def test_layout(corpus):
    assert corpus.languages == BUILTIN_LANGUAGES
    assert corpus.root.name == f"v{bc.CORPUS_VERSION}"
    assert corpus.root.parent.name == "builtin"
    assert (corpus.root / "manifest.json").is_file()
    assert not list(corpus.root.rglob("*.tmp"))


@pytest.mark.parametrize("split", SPLITS)
def test_mono_files_are_clean(corpus, split):
    for lang in BUILTIN_LANGUAGES:
        docs = _lines(corpus.mono_path(lang, split))
        assert docs, (lang, split)
        assert len(docs) == len(set(docs)), (lang, split)
        for doc in docs:
            assert doc and doc == doc.strip(), (lang, doc)
            assert "\t" not in doc and "\r" not in doc and "  " not in doc, (lang, doc)
            assert unicodedata.is_normalized("NFC", doc), (lang, doc)


@pytest.mark.parametrize("split", SPLITS)
def test_parallel_files(corpus, split):
    english_names = set(bc._name_table(bc._locale_data("en")).values())
    for lang in NON_ENGLISH:
        lines = _lines(corpus.parallel_path(lang, split))
        assert lines, (lang, split)
        assert len(lines) == len(set(lines))
        for line in lines:
            assert line.count("\t") == 1, (lang, line)
            en, target = line.split("\t")
            assert en and target and en != target, (lang, line)
            assert en in english_names, (lang, line)  # English on the left
            assert unicodedata.is_normalized("NFC", line)
            if not lang.endswith("_Latn"):
                assert not target.isascii(), (lang, line)


def test_validation_has_udhr_prose(corpus):
    for lang in BUILTIN_LANGUAGES:
        validation = set(_lines(corpus.mono_path(lang, "validation")))
        train = set(_lines(corpus.mono_path(lang, "train")))
        prose = set(bc._udhr_paragraphs(lang))
        assert len(validation) >= 2
        assert len(validation & prose) >= 2, lang
        assert train & prose, lang


def test_train_and_validation_disjoint(corpus):
    for lang in BUILTIN_LANGUAGES:
        train = set(_lines(corpus.mono_path(lang, "train")))
        validation = set(_lines(corpus.mono_path(lang, "validation")))
        assert not train & validation, lang
    for lang in NON_ENGLISH:
        train = [line.split("\t") for line in _lines(corpus.parallel_path(lang, "train"))]
        validation = [line.split("\t") for line in _lines(corpus.parallel_path(lang, "validation"))]
        assert not {en for en, _ in train} & {en for en, _ in validation}, lang
        assert not {t for _, t in train} & {t for _, t in validation}, lang


def test_validation_is_about_a_tenth(corpus):
    for row_train, row_val in zip(corpus.describe()[::2], corpus.describe()[1::2]):
        share = row_val["documents"] / (row_val["documents"] + row_train["documents"])
        assert 0.05 <= share <= 0.35, (row_train["lang"], share)


def test_describe_matches_files(corpus):
    rows = corpus.describe()
    assert len(rows) == 2 * len(BUILTIN_LANGUAGES)
    for row in rows:
        lang, split = row["lang"], row["split"]
        path = corpus.mono_path(lang, split)
        docs = _lines(path)
        assert row["name"] == language_name(lang)
        assert row["low_resource"] == (lang in LOW_RESOURCE)
        assert row["documents"] == len(docs)
        assert row["bytes"] == path.stat().st_size
        assert row["chars"] == sum(len(d) for d in docs)
        expected_pairs = 0 if lang == "eng_Latn" else len(_lines(corpus.parallel_path(lang, split)))
        assert row["parallel_pairs"] == expected_pairs
    manifest = json.loads((corpus.root / "manifest.json").read_text())
    for row in rows:
        assert manifest["stats"][row["lang"]][row["split"]]["documents"] == row["documents"]


def test_describe_table(corpus):
    table = describe_table(corpus)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["lang", "name", "low-res"]
    assert len(lines) == len(BUILTIN_LANGUAGES) + 4  # header, rule, rows, rule, total
    for lang in BUILTIN_LANGUAGES:
        row = next(line for line in lines if line.startswith(lang))
        assert ("yes" in row.split()) == (lang in LOW_RESOURCE)
    assert lines[-1].startswith("total")


def test_deterministic_and_independent_of_babel_state(tmp_path, corpus):
    from babel import Locale

    # Babel's shared locale cache changes one locale's data when another is read; the build
    # must not see that.
    for code in ("sw", "ig", "ti", "xh", "am"):
        locale = Locale.parse(code)
        _ = locale.days["stand-alone"]["wide"], locale.months["stand-alone"]["wide"]
    other = build_builtin_corpus(tmp_path, progress=False)
    assert _snapshot(other.root) == _snapshot(corpus.root)


def test_second_call_reuses_cache(tmp_path, monkeypatch):
    first = build_builtin_corpus(tmp_path, progress=True)
    manifest = first.root / "manifest.json"
    before = {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()}

    def fail(*args, **kwargs):
        raise AssertionError("cache was rebuilt")

    monkeypatch.setattr(bc, "_build", fail)
    second = build_builtin_corpus(tmp_path, languages=["pa", "en"], progress=False)
    assert second.root == first.root
    assert second.languages == ("pan_Guru", "eng_Latn")
    assert {p: p.stat().st_mtime_ns for p in first.root.rglob("*") if p.is_file()} == before
    assert manifest.stat().st_mtime_ns == before[manifest]


@pytest.mark.parametrize("damage", ["delete_manifest", "truncate_file", "delete_file", "other_fraction"])
def test_incomplete_cache_is_rebuilt(tmp_path, damage):
    corpus = build_builtin_corpus(tmp_path, progress=False)
    reference = _snapshot(corpus.root)
    victim = corpus.mono_path("pan_Guru", "train")
    fraction = 0.1
    if damage == "delete_manifest":
        (corpus.root / "manifest.json").unlink()
    elif damage == "truncate_file":
        victim.write_bytes(victim.read_bytes()[:100])
    elif damage == "delete_file":
        victim.unlink()
    else:
        fraction = 0.2
    rebuilt = build_builtin_corpus(tmp_path, progress=False, validation_fraction=fraction)
    manifest = json.loads((rebuilt.root / "manifest.json").read_text())
    assert manifest["validation_fraction"] == fraction
    if fraction == 0.1:
        assert _snapshot(rebuilt.root) == reference
    else:
        assert _snapshot(rebuilt.root) != reference


def test_language_spellings_select_languages(corpus):
    cache_dir = corpus.root.parent.parent
    selected = build_builtin_corpus(cache_dir, languages=["PA", "sw", "en_US", "pan_Guru"], progress=False)
    assert selected.languages == ("pan_Guru", "swa_Latn", "eng_Latn")
    assert selected.mono_path("pa-IN", "train") == corpus.mono_path("pan_Guru", "train")
    assert [row["lang"] for row in selected.describe()] == ["pan_Guru"] * 2 + ["swa_Latn"] * 2 + ["eng_Latn"] * 2
    with pytest.raises(ValueError, match="hin_Deva"):
        selected.mono_path("hi", "train")
    with pytest.raises(ValueError, match="test"):
        selected.mono_path("pa", "test")
    with pytest.raises(ValueError, match="English"):
        selected.parallel_path("en", "train")


@pytest.mark.parametrize("code", ["xx", "klingon", "fr", "hau_Latn"])
def test_unknown_or_unsupported_language(tmp_path, code):
    with pytest.raises(ValueError) as info:
        build_builtin_corpus(tmp_path, languages=[code], progress=False)
    message = str(info.value)
    assert repr(code) in message
    assert "pan_Guru" in message and "eng_Latn" in message  # lists what is supported
    assert not (tmp_path / "builtin").exists()  # nothing was built


def test_bad_validation_fraction(tmp_path):
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="validation_fraction"):
            build_builtin_corpus(tmp_path, validation_fraction=fraction, progress=False)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWRES_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("LOWRES_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "lowres"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "lowres"


def test_uses_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWRES_CACHE_DIR", str(tmp_path))
    corpus = build_builtin_corpus(languages=["yo"], progress=False)
    assert corpus.root == tmp_path / "builtin" / f"v{bc.CORPUS_VERSION}"
    assert corpus.mono_path("yo", "train").is_file()


def test_settings_errors_and_atomically_written_files(tmp_path, corpus):
    import os
    import stat

    from lowres.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="'xx'"):
        build_builtin_corpus(tmp_path, languages=["xx"], progress=False)
    with pytest.raises(ConfigError, match="validation_fraction"):
        build_builtin_corpus(tmp_path, validation_fraction=1.0, progress=False)
    with pytest.raises(DataError, match="unknown split"):
        corpus.mono_path("pan_Guru", "test")
    umask = os.umask(0)
    os.umask(umask)
    # lowres.files.write_atomic gives the usual mode (the former private temporary files stayed 0600)
    for path in (corpus.mono_path("pan_Guru", "train"), corpus.parallel_path("pan_Guru", "train"),
                 corpus.root / "manifest.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert not list(corpus.root.glob("**/.*.tmp"))
