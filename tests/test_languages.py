"""Language code normalisation: every accepted spelling maps to ISO 639-3 + ISO 15924."""

import pytest

from lowres.data.languages import UnknownLanguageError, language_name, normalize_language, script_of


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("pa", "pan_Guru"),
        ("pan", "pan_Guru"),
        ("pa-IN", "pan_Guru"),
        ("pan_Guru", "pan_Guru"),
        ("pa_Guru", "pan_Guru"),
        ("pa-Guru-IN", "pan_Guru"),
        ("PA", "pan_Guru"),
        ("PAN_GURU", "pan_Guru"),
        (" pa ", "pan_Guru"),
        ("en", "eng_Latn"),
        ("eng", "eng_Latn"),
        ("en_US", "eng_Latn"),
        ("en-us", "eng_Latn"),
        ("hi", "hin_Deva"),
        ("sw", "swa_Latn"),
        ("swa", "swa_Latn"),
        ("swh", "swh_Latn"),
        ("swh_Latn", "swh_Latn"),
        ("ne", "nep_Deva"),
        ("npi", "npi_Deva"),
        ("yo", "yor_Latn"),
        ("zh", "zho_Hans"),
        ("zh-TW", "zho_Hant"),
        ("sr_Cyrl", "srp_Cyrl"),
        ("sr_Latn", "srp_Latn"),
        ("uz_Latn", "uzb_Latn"),
        ("am", "amh_Ethi"),
        ("si", "sin_Sinh"),
        ("ka", "kat_Geor"),
        ("ta", "tam_Taml"),
        ("ger", "deu_Latn"),  # ISO 639-2/B
        ("iw", "heb_Hebr"),  # deprecated ISO 639-1
    ],
)
def test_normalize_table(code, expected):
    assert normalize_language(code) == expected


def test_default_script_follows_region():
    assert normalize_language("pa_PK") == "pan_Arab"
    assert normalize_language("pa_IN") == "pan_Guru"


def test_explicit_script_wins():
    assert normalize_language("pa_Arab") == "pan_Arab"
    assert normalize_language("pa-Arab-IN") == "pan_Arab"
    assert normalize_language("zh_Hant_CN") == "zho_Hant"
    assert normalize_language("en_Dsrt") == "eng_Dsrt"


def test_script_is_title_cased():
    assert normalize_language("pa_guru") == "pan_Guru"
    assert normalize_language("hi-DEVA") == "hin_Deva"


def test_gflanguages_fallback_for_languages_babel_lacks():
    # Mandinka has no Babel likely-subtags entry; Google Fonts metadata knows its script.
    assert normalize_language("mnk") == "mnk_Latn"


def test_idempotent():
    for code in ("pa", "sw", "zh-TW", "sr_Cyrl", "npi"):
        once = normalize_language(code)
        assert normalize_language(once) == once


def test_script_of_and_name():
    assert script_of("pa") == "Guru"
    assert script_of("sr_Latn") == "Latn"
    assert script_of("zh") == "Hans"
    assert language_name("pa") == "Punjabi"
    assert language_name("pan_Guru") == "Punjabi"
    assert language_name("en_US") == "English"
    assert language_name("sw") == "Swahili"
    assert language_name("ne") == "Nepali"
    assert language_name("mnk") == "Mandinka"


@pytest.mark.parametrize(
    "code", ["xx", "klingon", "zzz", "und", "", "p", "pa_Gurmukhi", "pa_Zzzq", "pa_Latn_Guru", "en__US", "12"]
)
def test_unknown_codes_raise(code):
    with pytest.raises(UnknownLanguageError) as info:
        normalize_language(code)
    assert repr(code) in str(info.value)
    assert "pan_Guru" in str(info.value)  # tells the user what a valid code looks like


def test_unknown_is_a_value_error():
    with pytest.raises(ValueError, match="'xx'"):
        language_name("xx")
    with pytest.raises(ValueError, match="'xx'"):
        script_of("xx")


def test_repeated_lookups_are_served_from_the_cache():
    normalize_language("pa")
    before = normalize_language.cache_info().hits
    for _ in range(100):
        normalize_language("pa")
    assert normalize_language.cache_info().hits - before == 100


# The shared data sit beside the repository (`../shared/data`, as in gin_configs/corpora/flores.gin).
_FLORES_DEV = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "flores200" / "dev"


@pytest.mark.skipif(not _FLORES_DEV.is_dir(), reason="shared FLORES-200 dev not present")
def test_every_flores_code_normalises_and_keeps_an_explicit_script():
    codes = sorted(p.name.removesuffix(".dev") for p in _FLORES_DEV.glob("*.dev"))
    assert len(codes) == 205
    normalised = {code: normalize_language(code) for code in codes}
    for code, lang in normalised.items():
        if "_" in code:
            assert lang == code
        else:
            assert lang.startswith(code) or code in ("ajp", "msa")  # retired or macro codes may map elsewhere
    assert len(set(normalised.values())) == 204  # ajp (retired) and apc share apc_Arab


def test_unknown_language_is_a_data_error_that_keeps_its_code():
    from lowres.errors import DataError

    with pytest.raises(DataError) as info:
        normalize_language("qqqq")
    assert isinstance(info.value, UnknownLanguageError) and isinstance(info.value, ValueError)
    assert info.value.code == "qqqq"
    custom = UnknownLanguageError("xx", "not in this family")
    assert custom.code == "xx" and str(custom).startswith("not in this family: 'xx'")
