"""Language code normalisation: any common spelling -> ISO 639-3 + ISO 15924 (``pan_Guru``).

Every example in lowres carries its language in this one form, so mixtures, metrics and
the built-in corpus agree on what "Punjabi" is called.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import pycountry
from babel import Locale
from babel.core import get_global

from lowres.errors import DataError

__all__ = ["UnknownLanguageError", "language_name", "normalize_language", "script_of"]

_HINT = "use an ISO 639-1/639-3 code such as 'pa' or 'pan', optionally with a script: 'pan_Guru'"
_LANG_RE = re.compile(r"^[a-z]{2,3}$")
_SCRIPT_RE = re.compile(r"^[a-z]{4}$")
_REGION_RE = re.compile(r"^(?:[a-z]{2}|[0-9]{3})$")
_GF_ID_RE = re.compile(r"^([a-z]{2,3})_([A-Z][a-z]{3})$")


class UnknownLanguageError(DataError):
    """A language code that cannot be mapped to ISO 639-3 + ISO 15924."""

    def __init__(self, code: str, reason: str = "unknown language code"):
        self.code = code
        super().__init__(f"{reason}: {code!r}; {_HINT}")


def _lookup(**query: str):
    """pycountry lookup that returns None instead of raising (older pycountry raises KeyError)."""
    try:
        return pycountry.languages.get(**query)
    except (KeyError, LookupError):
        return None


def _iso_language(subtag: str, code: str):
    """pycountry record for a 2- or 3-letter subtag, or None when ISO 639 does not know it."""
    if len(subtag) == 2:
        return _lookup(alpha_2=subtag)
    record = _lookup(alpha_3=subtag) or _lookup(bibliographic=subtag)
    if record is not None and getattr(record, "type", None) == "S":
        raise UnknownLanguageError(code, "not a language (ISO 639 special code)")
    return record


def _split(code: str) -> tuple[str, str | None, str | None]:
    """Split 'pa-Guru-IN' into lower-case (language, script, region) subtags."""
    parts = code.strip().replace("-", "_").lower().split("_")
    lang, script, region = parts[0], None, None
    if not _LANG_RE.match(lang):
        raise UnknownLanguageError(code)
    for part in parts[1:]:
        if script is None and region is None and _SCRIPT_RE.match(part):
            script = part
        elif region is None and _REGION_RE.match(part):
            region = part
        else:
            raise UnknownLanguageError(code, f"unexpected subtag {part!r} in language code")
    return lang, script, region


def _valid_script(script: str, code: str) -> str:
    titled = script.title()
    if not _SCRIPT_RE.match(script) or pycountry.scripts.get(alpha_4=titled) is None:
        raise UnknownLanguageError(code, f"unknown ISO 15924 script {titled!r} in language code")
    return titled


@functools.lru_cache(maxsize=1)
def _gf_index() -> dict[str, tuple[str, ...]]:
    """gflanguages ids grouped by language subtag: {'pa': ('Arab', 'Guru'), ...}."""
    index: dict[str, list[str]] = {}
    folder = resources.files("gflanguages.data").joinpath("languages")
    for entry in folder.iterdir():
        match = _GF_ID_RE.match(entry.name.removesuffix(".textproto"))
        if match:
            index.setdefault(match.group(1), []).append(match.group(2))
    return {lang: tuple(sorted(scripts)) for lang, scripts in index.items()}


@functools.lru_cache(maxsize=4096)
def _gf_default_script(lang: str) -> str | None:
    """Script of the most populous gflanguages entry for ``lang`` (None if it has none)."""
    scripts = _gf_index().get(lang, ())
    if len(scripts) <= 1:
        return scripts[0] if scripts else None
    import gflanguages  # parsing protos is slow, so only for the rare multi-script fallback

    folder = resources.files("gflanguages.data").joinpath("languages")
    best: tuple[int, str] | None = None
    for script in scripts:
        proto = gflanguages.text_format.Parse(
            folder.joinpath(f"{lang}_{script}.textproto").read_text(encoding="utf-8"),
            gflanguages.LanguageProto(),
        )
        # Highest population wins; ties go to the alphabetically first script.
        key = (-proto.population, script)
        best = key if best is None or key < best else best
    return best[1] if best else None


def _default_script(candidates: list[tuple[str, str | None]]) -> str | None:
    """First script Babel's likely subtags (then gflanguages) give for the candidate subtags."""
    likely = get_global("likely_subtags")
    for lang, region in candidates:
        for key in ([f"{lang}_{region.upper()}"] if region else []) + [lang]:
            expanded = likely.get(key)
            if expanded:
                for part in expanded.split("_")[1:]:
                    if len(part) == 4:
                        return part
    for lang, _ in candidates:
        script = _gf_default_script(lang)
        if script:
            return script
    return None


@functools.lru_cache(maxsize=65536)
def normalize_language(code: str) -> str:
    """Map any common spelling ('pa', 'PA-in', 'pan_Guru', 'pa-Guru-IN') to 'pan_Guru'."""
    if not isinstance(code, str) or not code.strip():
        raise UnknownLanguageError(str(code))
    lang, script, region = _split(code)
    aliases = get_global("language_aliases")
    record = _iso_language(lang, code)
    if record is None:
        # Deprecated ISO 639-1 codes ('iw', 'in', 'sh') that CLDR still maps to a current one.
        target = aliases.get(lang)
        if target is None:
            raise UnknownLanguageError(code)
        target_lang, target_script, _ = _split(target)
        return normalize_language("_".join(filter(None, [target_lang, script or target_script, region])))
    alpha_3: str = record.alpha_3
    if script is not None:
        return f"{alpha_3}_{_valid_script(script, code)}"
    candidates: list[tuple[str, str | None]] = []
    for subtag in (getattr(record, "alpha_2", None), alpha_3):
        if subtag:
            candidates.append((subtag, region))
    # Individual languages of a macrolanguage ('npi', 'swh') inherit its likely script.
    alias = aliases.get(alpha_3)
    if alias:
        alias_lang, alias_script, alias_region = _split(alias)
        if alias_script:
            return f"{alpha_3}_{alias_script.title()}"
        candidates.append((alias_lang, region or alias_region))
    default = _default_script(candidates)
    if default is None:
        raise UnknownLanguageError(code, "no default script known for language code")
    return f"{alpha_3}_{default}"


@functools.lru_cache(maxsize=4096)
def language_name(code: str) -> str:
    """English name of the language ('pa' -> 'Punjabi'), from CLDR when it has one, else ISO 639-3."""
    alpha_3 = normalize_language(code).split("_")[0]
    record = _lookup(alpha_3=alpha_3)
    english = Locale("en").languages
    for subtag in (getattr(record, "alpha_2", None), alpha_3):
        if subtag and subtag in english:
            return english[subtag]
    return getattr(record, "common_name", None) or record.name


def script_of(code: str) -> str:
    """ISO 15924 script of the (normalised) code: 'pa' -> 'Guru'."""
    return normalize_language(code).split("_")[1]
