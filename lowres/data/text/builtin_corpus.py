"""The built-in default corpus: real multilingual text assembled from installed PyPI packages.

lowres commits no third-party text. On a fresh machine the default job trains on:

* UDHR excerpts from the Google Fonts language metadata (``gflanguages`` sample texts), one
  paragraph per document: the only running prose, so every validation split gets some;
* CLDR display names from Babel (territories, languages, scripts, currencies, calendar terms,
  time zones, cities, units), grouped into lists of ~30 names per document with the locale's
  own list pattern, and paired key by key with English as translation pairs.

Names are split into train/validation by a hash of their CLDR key, so the same concepts are
held out in every language and no name is in both splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import pathlib
import pickle
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources

from babel import localedata
from babel.core import get_global

from lowres.data.languages import UnknownLanguageError, language_name, normalize_language
from lowres.errors import ConfigError, DataError
from lowres.files import write_atomic

__all__ = [
    "BUILTIN_LANGUAGES",
    "CORPUS_VERSION",
    "LOW_RESOURCE",
    "SPLITS",
    "BuiltinCorpus",
    "build_builtin_corpus",
    "default_cache_dir",
    "describe_table",
]

# Bump when the recipe (sources, filters, split rule, layout) changes: old caches are then ignored.
CORPUS_VERSION = 1
ENGLISH = "eng_Latn"
SPLITS = ("train", "validation")

# Codes as normalize_language() spells them: ISO 639-1 'sw' and 'ne' map to the macrolanguages
# swa/nep (FLORES-200 calls the individual languages swh_Latn and npi_Deva). Hausa is absent:
# gflanguages has one distinct UDHR paragraph for it, too little for a validation split.
BUILTIN_LANGUAGES: tuple[str, ...] = (
    "eng_Latn",
    "pan_Guru",
    "hin_Deva",
    "swa_Latn",
    "yor_Latn",
    "tir_Ethi",
    "mlt_Latn",
    "cym_Latn",
    "eus_Latn",
    "isl_Latn",
    "nep_Deva",
    "sin_Sinh",
    "zul_Latn",
    "amh_Ethi",
    "som_Latn",
    "gle_Latn",
    "xho_Latn",
    "ibo_Latn",
    "tam_Taml",
    "kat_Geor",
)

# Low-resource in the usual MT sense (little web and parallel text). English and Hindi are
# high-resource; Basque, Icelandic, Tamil and Georgian count as mid-resource here.
LOW_RESOURCE: frozenset[str] = frozenset(
    {
        "pan_Guru",
        "swa_Latn",
        "yor_Latn",
        "tir_Ethi",
        "mlt_Latn",
        "cym_Latn",
        "nep_Deva",
        "sin_Sinh",
        "zul_Latn",
        "amh_Ethi",
        "som_Latn",
        "gle_Latn",
        "xho_Latn",
        "ibo_Latn",
    }
)

NAMES_PER_DOCUMENT = 30
MIN_PARAGRAPH_CHARS = 20
MIN_UDHR_VALIDATION_DOCS = 2
# Font-specimen fields that hold a word or two, not text.
_SKIPPED_SAMPLE_FIELDS = ("masthead_full", "masthead_partial", "poster_sm", "poster_md", "poster_lg")
_STALE_TEMP_SECONDS = 3600


def default_cache_dir() -> pathlib.Path:
    """$LOWRES_CACHE_DIR if set, else $XDG_CACHE_HOME/lowres, else ~/.cache/lowres."""
    if os.environ.get("LOWRES_CACHE_DIR"):
        return pathlib.Path(os.environ["LOWRES_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "lowres"
    return pathlib.Path.home() / ".cache" / "lowres"


@dataclasses.dataclass(frozen=True)
class BuiltinCorpus:
    """A built corpus on disk: mono text per language and split, English-aligned name pairs."""

    root: pathlib.Path
    languages: tuple[str, ...]

    def _check(self, lang: str, split: str) -> str:
        code = normalize_language(lang)
        if code not in self.languages:
            raise DataError(f"language {lang!r} ({code}) is not in this corpus; it has: {', '.join(self.languages)}")
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
        return code

    def mono_path(self, lang: str, split: str) -> pathlib.Path:
        """One document per line, UTF-8 NFC, no empty lines."""
        return self.root / _mono_relpath(self._check(lang, split), split)

    def parallel_path(self, lang: str, split: str) -> pathlib.Path:
        """TSV lines 'English<TAB>target' for a non-English language."""
        code = self._check(lang, split)
        if code == ENGLISH:
            raise DataError("English has no parallel file: pairs are English -> other language")
        return self.root / _parallel_relpath(code, split)

    def describe(self) -> list[dict]:
        """Per language and split, counted from the files: bytes is the file size, chars excludes newlines."""
        rows = []
        for lang in self.languages:
            for split in SPLITS:
                docs = _read_lines(self.mono_path(lang, split))
                pairs = 0 if lang == ENGLISH else len(_read_lines(self.parallel_path(lang, split)))
                rows.append(
                    {
                        "lang": lang,
                        "name": language_name(lang),
                        "low_resource": lang in LOW_RESOURCE,
                        "split": split,
                        "documents": len(docs),
                        "bytes": self.mono_path(lang, split).stat().st_size,
                        "chars": sum(len(doc) for doc in docs),
                        "parallel_pairs": pairs,
                    }
                )
        return rows


def describe_table(corpus: BuiltinCorpus) -> str:
    """Aligned plain-text table of corpus sizes for a CLI."""
    by_lang: dict[str, dict[str, dict]] = {}
    for row in corpus.describe():
        by_lang.setdefault(row["lang"], {})[row["split"]] = row
    header = ("lang", "name", "low-res", "train docs", "train KB", "val docs", "val KB", "pairs")
    lines = []
    totals = [0, 0, 0, 0, 0]
    for lang, splits in by_lang.items():
        train, val = splits["train"], splits["validation"]
        pairs = train["parallel_pairs"] + val["parallel_pairs"]
        numbers = [train["documents"], train["bytes"], val["documents"], val["bytes"], pairs]
        totals = [a + b for a, b in zip(totals, numbers)]
        lines.append(
            (lang, train["name"], "yes" if train["low_resource"] else "no", str(numbers[0]),
             f"{numbers[1] / 1024:.1f}", str(numbers[2]), f"{numbers[3] / 1024:.1f}", str(pairs))
        )
    lines.append(
        ("total", f"{len(by_lang)} languages", str(sum(lang in LOW_RESOURCE for lang in by_lang)),
         str(totals[0]), f"{totals[1] / 1024:.1f}", str(totals[2]), f"{totals[3] / 1024:.1f}", str(totals[4]))
    )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    numeric = set(range(3, len(header)))

    def fmt(row: Sequence[str]) -> str:
        cells = [c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *map(fmt, lines[:-1]), rule, fmt(lines[-1])])


def build_builtin_corpus(
    cache_dir: pathlib.Path | None = None,
    languages: Sequence[str] | None = None,
    progress: bool = True,
    validation_fraction: float = 0.1,
) -> BuiltinCorpus:
    """Build (or reuse from cache) the built-in corpus and return a handle for ``languages``.

    All BUILTIN_LANGUAGES are built together (a few seconds); ``languages`` only selects which
    the returned handle exposes. Output is byte-for-byte deterministic.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    selected = _select_languages(languages)
    root = pathlib.Path(cache_dir if cache_dir is not None else default_cache_dir()) / "builtin" / f"v{CORPUS_VERSION}"
    if not _cache_complete(root, validation_fraction):
        _build(root, validation_fraction, progress)
    return BuiltinCorpus(root=root, languages=selected)


# ----------------------------------------------------------------------------- selection


def _select_languages(languages: Sequence[str] | None) -> tuple[str, ...]:
    if languages is None:
        return BUILTIN_LANGUAGES
    if isinstance(languages, str):
        languages = [languages]
    supported = ", ".join(BUILTIN_LANGUAGES)
    selected: list[str] = []
    for code in languages:
        try:
            normalized = normalize_language(code)
        except UnknownLanguageError as err:
            raise ConfigError(f"unknown language {code!r} ({err}); the built-in corpus supports: {supported}") from err
        if normalized not in BUILTIN_LANGUAGES:
            raise ConfigError(
                f"language {code!r} ({normalized}) is not in the built-in corpus; it supports: {supported}"
            )
        if normalized not in selected:
            selected.append(normalized)
    if not selected:
        raise ConfigError(f"no languages selected; the built-in corpus supports: {supported}")
    return tuple(selected)


# ----------------------------------------------------------------------------- cache


def _mono_relpath(lang: str, split: str) -> str:
    return f"mono/{lang}.{split}.txt"


def _parallel_relpath(lang: str, split: str) -> str:
    return f"parallel/{ENGLISH}-{lang}.{split}.tsv"


def _cache_complete(root: pathlib.Path, validation_fraction: float) -> bool:
    """True when manifest.json (written last) matches this recipe and every file it lists is intact."""
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if (
        manifest.get("version") != CORPUS_VERSION
        or manifest.get("validation_fraction") != validation_fraction
        or manifest.get("languages") != list(BUILTIN_LANGUAGES)
        or manifest.get("packages") != _source_versions()
    ):
        return False
    files = manifest.get("files", {})
    if set(files) != set(_expected_files()):
        return False
    for relpath, info in files.items():
        path = root / relpath
        if not path.is_file() or path.stat().st_size != info["bytes"]:
            return False
    return True


def _expected_files() -> list[str]:
    paths = []
    for lang in BUILTIN_LANGUAGES:
        for split in SPLITS:
            paths.append(_mono_relpath(lang, split))
            if lang != ENGLISH:
                paths.append(_parallel_relpath(lang, split))
    return paths


def _source_versions() -> dict[str, str]:
    """Versions of the packages the text comes from: an upgrade may change the text, so it rebuilds."""
    return {name: importlib.metadata.version(name) for name in ("babel", "gflanguages")}


def _remove_stale_temps(root: pathlib.Path) -> None:
    """Delete temp files left by a killed build (old ones only: a concurrent build may own new ones)."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for tmp in root.glob("**/.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:
            pass


def _build(root: pathlib.Path, validation_fraction: float, progress: bool) -> None:
    from tqdm.auto import tqdm

    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").unlink(missing_ok=True)
    _remove_stale_temps(root)
    english_data = _locale_data("en")
    english = _name_table(english_data)
    english_vocabulary = _english_vocabulary(english_data)
    files: dict[str, dict] = {}
    stats: dict[str, dict] = {}
    for lang in tqdm(BUILTIN_LANGUAGES, desc="lowres builtin corpus", unit="lang", disable=not progress):
        mono, parallel = _language_splits(lang, validation_fraction, english, english_vocabulary)
        stats[lang] = {}
        for split in SPLITS:
            outputs = {_mono_relpath(lang, split): mono[split]}
            if lang != ENGLISH:
                outputs[_parallel_relpath(lang, split)] = [f"{en}\t{tgt}" for en, tgt in parallel[split]]
            for relpath, lines in outputs.items():
                data = "".join(line + "\n" for line in lines).encode("utf-8")
                write_atomic(root / relpath, data)
                files[relpath] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            stats[lang][split] = {"documents": len(mono[split]), "parallel_pairs": len(parallel[split])}
    manifest = {
        "version": CORPUS_VERSION,
        "validation_fraction": validation_fraction,
        "languages": list(BUILTIN_LANGUAGES),
        "sources": {"udhr": "gflanguages sample_text", "names": "Babel CLDR display names"},
        "packages": _source_versions(),
        "stats": stats,
        "files": files,
    }
    write_atomic(root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------- text sources


def _clean(text: str) -> str:
    """NFC, whitespace runs (tabs and newlines included) collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _stable_fraction(key: str) -> float:
    """Deterministic pseudo-random number in [0, 1) for a key (same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def _alpha2_or_3(lang: str) -> list[str]:
    import pycountry

    alpha_3 = lang.split("_")[0]
    record = pycountry.languages.get(alpha_3=alpha_3)
    alpha_2 = getattr(record, "alpha_2", None)
    return [alpha_2, alpha_3] if alpha_2 else [alpha_3]


def _udhr_paragraphs(lang: str) -> list[str]:
    """Distinct UDHR paragraphs from the gflanguages sample text, in field order."""
    import gflanguages

    script = lang.split("_")[1]
    folder = resources.files("gflanguages.data").joinpath("languages")
    proto = None
    for subtag in _alpha2_or_3(lang):
        entry = folder.joinpath(f"{subtag}_{script}.textproto")
        if entry.is_file():
            proto = gflanguages.text_format.Parse(entry.read_text(encoding="utf-8"), gflanguages.LanguageProto())
            break
    if proto is None or not proto.HasField("sample_text"):
        return []
    candidates: list[str] = []
    for field, value in proto.sample_text.ListFields():
        if field.name in _SKIPPED_SAMPLE_FIELDS or not isinstance(value, str):
            continue
        for line in value.split("\n"):
            text = _clean(line)
            if len(text) >= MIN_PARAGRAPH_CHARS and text not in candidates:
                candidates.append(text)
    # Specimen fields often repeat the start of a longer one; keep only maximal paragraphs.
    return [p for p in candidates if not any(p != q and p in q for q in candidates)]


def _babel_ident(lang: str) -> str | None:
    """Babel locale identifier whose default script is the script of ``lang`` (None if CLDR lacks it)."""
    script = lang.split("_")[1]
    for subtag in _alpha2_or_3(lang):
        if localedata.exists(subtag) and normalize_language(subtag) == lang:
            return subtag
        if localedata.exists(f"{subtag}_{script}"):
            return f"{subtag}_{script}"
    return None


def _parent_locale(ident: str) -> str:
    parent = get_global("parent_exceptions").get(ident)
    if parent:
        return parent
    parts = ident.split("_")
    if len(parts) == 1:
        return "root"
    if len(parts) == 2 and len(parts[1]) == 4 and normalize_language(parts[0]) != normalize_language(ident):
        return "root"  # CLDR: a non-default script inherits from root, not from the language
    return "_".join(parts[:-1])


def _locale_data(ident: str) -> localedata.LocaleDataDict:
    """CLDR data for one locale, merged from Babel's pickles without Babel's shared cache.

    Babel's cached locales share nested dicts with their parents and resolve aliases in place, so
    reading one locale can change what another returns (Igbo day names showed up under Tigrinya).
    A private copy keeps the corpus correct and independent of what the process did before.
    """
    chain = [ident]
    while chain[-1] != "root":
        chain.append(_parent_locale(chain[-1]))
    data: dict = {}
    for name in reversed(chain):
        with open(localedata.resolve_locale_filename(name), "rb") as f:
            localedata.merge(data, pickle.load(f))  # Babel's own package data
    return localedata.LocaleDataDict(data)


def _names(data: Mapping, english: bool = False) -> Iterator[tuple[str, str, str]]:
    """(category, key, display name) for the CLDR name tables used by the corpus."""
    simple = {
        "territories": data["territories"],
        "languages": data["languages"],
        "scripts": data["scripts"],
        "currencies": data["currency_names"],
    }
    for category, table in simple.items():
        for key, name in table.items():
            yield category, str(key), name
    for kind in ("months", "days", "quarters"):
        for context in ("format", "stand-alone"):
            for key, name in data[kind].get(context, {}).get("wide", {}).items():
                yield "calendar", f"{kind}/{context}/{key}", name
    for key, name in data["eras"].get("wide", {}).items():
        yield "calendar", f"eras/{key}", name
    for key, name in data["day_periods"].get("format", {}).get("wide", {}).items():
        yield "calendar", f"day_periods/{key}", name
    for zone, widths in data["meta_zones"].items():
        for kind, name in widths.get("long", {}).items():
            yield "time_zones", f"{zone}/{kind}", name
    for zone, info in data["time_zones"].items():
        if "city" in info:
            yield "cities", zone, info["city"]
    for unit, widths in data["unit_display_names"].items():
        # Only long names: short/narrow ones are abbreviations, often untranslated.
        if "long" in widths:
            yield "units", unit, widths["long"]
        if english:
            for name in widths.values():
                yield "units", f"{unit}/abbr", name


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _english_vocabulary(english_data: Mapping) -> frozenset[str]:
    """Every word of every English CLDR name (abbreviations included), casefolded."""
    return frozenset(w for _, _, name in _names(english_data, english=True) for w in _words(_clean(name)))


def _translated(name: str, lang: str, english_vocabulary: frozenset[str]) -> bool:
    """False for names CLDR left in English (common in e.g. the Xhosa data) or in Latin script
    for a language written in another one ('GMT' in Tigrinya)."""
    if all(word in english_vocabulary for word in _words(name)):
        return False
    if lang.endswith("_Latn"):
        return True
    return any(c.isalpha() and not unicodedata.name(c, "").startswith("LATIN") for c in name)


def _name_table(data: Mapping) -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for category, key, name in _names(data):
        text = _clean(name)
        if text and "{" not in text:
            table.setdefault((category, key), text)
    return table


def _format_list(items: Sequence[str], patterns: Mapping[str, str]) -> str:
    """Join items with the locale's CLDR list pattern ('a, b na c')."""
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return patterns["2"].format(*items)
    text = patterns["end"].format(items[-2], items[-1])
    for item in reversed(items[1:-2]):
        text = patterns["middle"].format(item, text)
    return patterns["start"].format(items[0], text)


def _chunks(names: list[str], patterns: Mapping[str, str]) -> Iterable[str]:
    for start in range(0, len(names), NAMES_PER_DOCUMENT):
        yield _clean(_format_list(names[start : start + NAMES_PER_DOCUMENT], patterns))


def _language_splits(
    lang: str,
    validation_fraction: float,
    english: dict[tuple[str, str], str],
    english_vocabulary: frozenset[str],
) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, str]]]]:
    """Documents and English pairs for one language, split into train/validation."""
    mono: dict[str, list[str]] = {split: [] for split in SPLITS}
    pairs: dict[str, dict[tuple[str, str], None]] = {split: {} for split in SPLITS}

    paragraphs = _udhr_paragraphs(lang)
    if len(paragraphs) <= MIN_UDHR_VALIDATION_DOCS:
        raise RuntimeError(f"gflanguages has too little sample text for {lang} ({len(paragraphs)} paragraphs)")
    n_val = min(len(paragraphs) - 1, max(MIN_UDHR_VALIDATION_DOCS, round(validation_fraction * len(paragraphs))))
    ordered = sorted(paragraphs, key=lambda p: (_stable_fraction(f"{lang}/udhr/{p}"), p))
    mono["validation"].extend(ordered[:n_val])
    mono["train"].extend(ordered[n_val:])

    ident = _babel_ident(lang)
    if ident is not None:
        data = _locale_data(ident)
        target = _name_table(data)
        if lang != ENGLISH:
            target = {key: name for key, name in target.items() if _translated(name, lang, english_vocabulary)}
        held_out = {key for key in target if _stable_fraction("/".join(key)) < validation_fraction}
        held_out_names = {target[key] for key in held_out}
        held_out_english = {english[key] for key in held_out if key in english}
        names: dict[str, dict[str, dict[str, None]]] = {split: {} for split in SPLITS}
        for split, keys in (("validation", sorted(held_out)), ("train", sorted(target.keys() - held_out))):
            for key in keys:
                name, en = target[key], english.get(key)
                if split == "train" and (name in held_out_names or en in held_out_english):
                    continue  # the same text is held out under another key
                names[split].setdefault(key[0], {})[name] = None
                if lang != ENGLISH and en and en.casefold() != name.casefold():
                    pairs[split][(en, name)] = None
        for split in SPLITS:
            for category in sorted(names[split]):
                mono[split].extend(_chunks(list(names[split][category]), data["list_patterns"]["standard"]))

    for split in SPLITS:
        docs = [doc for doc in dict.fromkeys(mono[split]) if doc]
        mono[split] = sorted(docs, key=lambda d: (_stable_fraction(f"{lang}/{split}/{d}"), d))
    return mono, {split: list(pairs[split]) for split in SPLITS}


def _read_lines(path: pathlib.Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return text.removesuffix("\n").split("\n") if text else []
