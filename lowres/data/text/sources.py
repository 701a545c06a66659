"""SOURCE strings, parsed once, and what reads them: held-out documents for eval, file sources for training.

A SOURCE string is `KIND` or `KIND:LOCATION`; `SourceRef.parse` is the one parser every caller uses:

    builtin             the built-in 20-language corpus (built on first use)
    flores:DIR          a FLORES-200 directory (`<code>.<split>` files)
    text:GLOB           plain text, one document per line (`{lang}`/`{split}` in the glob name the parts)
    jsonl:GLOB          JSON lines with text, language and provenance fields
    udhr:GLOB           UDHR translations as HTML
    tsv:GLOB            parallel src<TAB>tgt lines of one language pair
    tfds:FAMILY         a monolingual TFDS family (mc4, wikipedia, wiki40b)
    task:NAME[:SPLIT]   a registered seqio task's raw text (`lowres eval` only)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

from lowres.data.languages import normalize_language
from lowres.data.text import readers
from lowres.errors import DataError

__all__ = [
    "CORPUS_KINDS",
    "Documents",
    "EVAL_KINDS",
    "FILE_KINDS",
    "SOURCE_KINDS",
    "SourceError",
    "SourceRef",
    "load_documents",
    "open_source",
]


class SourceError(DataError):
    """A SOURCE string that cannot be read; the message says which part and what to do."""


# kind -> how it is written; the order is the order messages list them in.
SOURCE_FORMS = {
    "builtin": "builtin",
    "flores": "flores:DIR",
    "text": "text:GLOB",
    "jsonl": "jsonl:GLOB",
    "udhr": "udhr:GLOB",
    "tsv": "tsv:GLOB",
    "tfds": "tfds:FAMILY",
    "task": "task:NAME[:SPLIT]",
}
SOURCE_KINDS = tuple(SOURCE_FORMS)
CORPUS_KINDS = tuple(kind for kind in SOURCE_KINDS if kind != "task")  # what a CorpusSpec (training) reads
FILE_KINDS = tuple(kind for kind in CORPUS_KINDS if kind != "tfds")  # what `open_source` opens
EVAL_KINDS = ("builtin", "flores", "text")  # what `load_documents` reads (task: is the evaluation's own)


def source_forms(kinds: Sequence[str] = SOURCE_KINDS) -> str:
    """`builtin, flores:DIR, ... or task:NAME[:SPLIT]`: how `kinds` are written, for messages."""
    forms = [SOURCE_FORMS[kind] for kind in kinds]
    return forms[0] if len(forms) == 1 else f"{', '.join(forms[:-1])} or {forms[-1]}"


@dataclasses.dataclass(frozen=True)
class SourceRef:
    """A parsed SOURCE string: `kind` (one of SOURCE_KINDS) and `location` (a path, glob, family or task).

    `str(ref)` gives the SOURCE string back; `SourceRef.parse` is the way to read one.
    """

    kind: str
    location: str = ""

    KINDS = SOURCE_KINDS

    def __post_init__(self):
        text = str(self)
        if self.kind not in SOURCE_FORMS:
            raise SourceError(f"unknown data source {text!r}; valid kinds: {source_forms()}")
        if self.kind == "builtin" and self.location:
            raise SourceError(f"data source {text!r}: builtin takes no location; write builtin")
        if self.kind != "builtin" and not self.location:
            raise SourceError(f"data source {text!r} needs a location after '{self.kind}:'; write {self.form}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}" if self.location or self.kind != "builtin" else self.kind

    @property
    def form(self) -> str:
        """How this kind is written (`flores:DIR`)."""
        return SOURCE_FORMS[self.kind]

    @classmethod
    def parse(cls, text: str | SourceRef, kinds: Sequence[str] = SOURCE_KINDS, *, alternatives: str = "") -> SourceRef:
        """`KIND[:LOCATION]` -> SourceRef, accepting only `kinds`.

        Every problem is one SourceError line naming the string: an unknown kind lists the valid
        kinds (and `alternatives`, e.g. "a declared corpus (...)"); a kind that is valid elsewhere
        but not among `kinds` says so; a missing location shows how the kind is written.
        """
        if isinstance(text, SourceRef):
            ref = text
        else:
            if not isinstance(text, str):
                raise SourceError(f"a data source is a string such as {source_forms(kinds)}, got {text!r}")
            kind, _, location = text.partition(":")
            if kind not in SOURCE_FORMS:
                listed = source_forms(kinds) + (f", or {alternatives}" if alternatives else "")
                raise SourceError(f"unknown data source {text!r}; valid kinds: {listed}")
            ref = cls(kind, location)
        if ref.kind not in kinds:
            raise SourceError(f"data source {str(ref)!r}: {ref.form} is not read here; use {source_forms(kinds)}")
        return ref

    def task(self) -> tuple[str, str | None]:
        """(NAME, SPLIT or None) of a `task:NAME[:SPLIT]` source."""
        if self.kind != "task":
            raise SourceError(f"data source {str(self)!r} is not a task source; write {SOURCE_FORMS['task']}")
        name, _, split = self.location.partition(":")
        if not name:
            raise SourceError(f"data source {str(self)!r} names no task; write {SOURCE_FORMS['task']}")
        return name, split or None


@dataclasses.dataclass(frozen=True)
class Documents:
    """Documents per language for one split, plus (when the source has one) training text for baselines."""

    split: str
    documents: dict[str, list[str]]
    reference: dict[str, list[str]] | None  # training split, if any
    description: str


def load_documents(
    source: str, split: str | None = None, langs: Sequence[str] | None = None, lang: str | None = None
) -> Documents:
    """Documents of `split` for each requested language of `source`."""
    ref = SourceRef.parse(source, EVAL_KINDS)
    wanted = [normalize_language(code) for code in langs] if langs else None
    if ref.kind == "builtin":
        return _builtin(split or "validation", wanted)
    if ref.kind == "flores":
        return _flores(Path(ref.location), split or "dev", wanted)
    if "{lang}" in ref.location or "{split}" in ref.location:
        return _text_pattern(ref.location, split, wanted, lang)
    if not lang:
        raise SourceError(f"{ref}: a text source needs --lang=CODE to say which language the file holds, "
                          "or {lang} in the pattern (text:DIR/{lang}.txt)")
    return _text(Path(ref.location), normalize_language(lang))


def _text_pattern(pattern: str, split: str | None, wanted: list[str] | None, lang: str | None) -> Documents:
    """A `text:` pattern with `{lang}` / `{split}` (as training reads it): `split` defaults to validation
    when the files have one, else train (then the evaluation is in-sample, and the report says so)."""
    source = PatternSource("text", pattern, lang)
    splits = source.splits()
    split = split or ("validation" if "validation" in splits else "train")
    if split not in splits:
        raise SourceError(f"text:{pattern} has splits {splits}, not {split!r}; pass --split")
    available = source.languages(split)
    langs = wanted or available
    missing = [code for code in langs if code not in available]
    if missing:
        raise SourceError(f"text:{pattern} has no {split} files for {missing}; it has {available}")
    docs = {code: _texts(source.documents(code, split), Path(pattern)) for code in langs}
    reference = None
    if split != "train" and "train" in splits and all(code in source.languages("train") for code in langs):
        reference = {code: _texts(source.documents(code, "train"), Path(pattern)) for code in langs}
    return Documents(split, docs, reference, f"text:{pattern} ({split})")


def _lines_of(path: Path, lang: str) -> list[str]:
    return _texts(readers.read_text(path, lang, "builtin"), path)


def _builtin(split: str, wanted: list[str] | None) -> Documents:
    from lowres.data.text.builtin_corpus import build_builtin_corpus

    corpus = build_builtin_corpus(progress=False)
    if split not in ("train", "validation"):
        raise SourceError(f"the builtin corpus has splits train and validation, not {split!r}")
    langs = wanted or list(corpus.languages)
    missing = [lang for lang in langs if lang not in corpus.languages]
    if missing:
        raise SourceError(f"the builtin corpus has no {missing}; it covers {list(corpus.languages)}")
    docs = {lang: _lines_of(corpus.mono_path(lang, split), lang) for lang in langs}
    reference = {lang: _lines_of(corpus.mono_path(lang, "train"), lang) for lang in langs}
    return Documents(split, docs, reference, f"builtin ({split})")


def _flores(directory: Path, split: str, wanted: list[str] | None) -> Documents:
    """One document per sentence line, the FLORES convention for per-language scores."""
    try:
        files = readers.flores_files(directory, split)
    except FileNotFoundError as error:
        hint = "; pass --split to choose another split" if directory.is_dir() else ""
        raise SourceError(f"flores:{error}{hint}") from error
    langs = wanted or sorted(files)
    missing = [lang for lang in langs if lang not in files]
    if missing:
        raise SourceError(f"flores:{directory}: no {split} file for {missing}")
    docs = {lang: _texts(readers.read_text(files[lang], lang, "flores"), files[lang]) for lang in langs}
    return Documents(split, docs, None, f"flores:{directory} ({split})")


def _text(path: Path, lang: str) -> Documents:
    if not path.is_file():
        raise SourceError(f"{path} does not exist or is not a file")
    return Documents("text", {lang: _texts(readers.read_text(path, lang, "text"), path)}, None, f"text:{path}")


def _texts(documents, path: Path) -> list[str]:
    texts = [doc.text for doc in documents if doc.text.strip()]
    if not texts:
        raise SourceError(f"{path} holds no text (every line is empty)")
    return texts


# ---------------------------------------------------------------- training sources
#
# A training source answers: which languages and splits it holds, the documents (or pairs) of one
# language and split on one host, and the files behind them (so seqio can shard by file).

_SPLIT_NAMES = ("train", "validation", "dev", "devtest", "test")


class FileSource:
    """Base of file-backed sources; subclasses fill `languages`, `splits`, `files` and `documents`."""

    kind = "monolingual"
    description = ""

    def splits(self) -> list[str]:
        raise NotImplementedError

    def languages(self, split: str) -> list[str]:
        raise NotImplementedError

    def files(self, lang: str, split: str) -> list[str]:
        raise NotImplementedError

    def documents(self, lang: str, split: str, shard_index: int = 0, num_shards: int = 1,
                  stats: readers.ReadStats | None = None):
        raise NotImplementedError

    def pairs(self, src: str, tgt: str, split: str, shard_index: int = 0, num_shards: int = 1,
              stats: readers.ReadStats | None = None):
        raise SourceError(f"{self.description} holds monolingual text only; it has no parallel pairs")

    def pair_languages(self, split: str) -> list[tuple[str, str]] | None:
        """The pairs a parallel-only source holds; None when any two languages pair up (FLORES)."""
        return None


@functools.lru_cache(maxsize=64)
def _flores_splits(directory: Path, mtime_ns: int) -> tuple[str, ...]:
    """The splits a FLORES directory holds, listed once per directory state (asked once per language)."""
    del mtime_ns  # part of the cache key: adding or removing a file lists again
    found = {p.suffix[1:] for p in directory.iterdir() if p.is_file()}
    return tuple(s for s in _SPLIT_NAMES if s in found)


class FloresSource(FileSource):
    """A FLORES-200 directory: `<code>.<split>` per language; metadata_<split>.tsv groups documents."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.description = f"flores:{self.directory}"
        if not self.directory.is_dir():
            raise SourceError(f"flores:{self.directory} is not a directory of FLORES <code>.<split> files")

    def splits(self) -> list[str]:
        splits = _flores_splits(self.directory, self.directory.stat().st_mtime_ns)
        if not splits:
            raise SourceError(f"flores:{self.directory} holds no <code>.dev/.devtest files")
        return list(splits)

    def _files(self, split: str) -> dict[str, Path]:
        try:
            return readers.flores_files(self.directory, split)
        except FileNotFoundError as error:
            raise SourceError(f"flores:{error}") from error

    def languages(self, split: str) -> list[str]:
        return sorted(self._files(split))

    def files(self, lang: str, split: str) -> list[str]:
        return [str(self._files(split)[lang])]

    def documents(self, lang, split, shard_index=0, num_shards=1, stats=None):
        return readers.read_flores(self.directory, lang, split, "flores200", True, shard_index, num_shards, stats)

    def pairs(self, src, tgt, split, shard_index=0, num_shards=1, stats=None):
        return readers.read_flores_pairs(self.directory, src, tgt, split, shard_index, num_shards, stats)


class PatternSource(FileSource):
    """Text or JSONL files named by a glob; `{lang}` and `{split}` in the pattern name the parts.

    Without `{lang}` the files hold one language (`lang=`) or, for JSONL, a per-record `lang_field`.
    Without `{split}` every file belongs to the `train` split.
    """

    def __init__(self, fmt: str, pattern: str, lang: str | None = None, layout: str = "lines",
                 text_field: str = "text", lang_field: str | None = "lang", id_field: str | None = "id",
                 invalid_utf8: str = "replace"):
        if fmt not in ("text", "jsonl", "udhr"):
            raise SourceError(f"unknown file format {fmt!r}")
        self.fmt, self.pattern, self.layout = fmt, pattern, layout
        self.text_field, self.lang_field, self.id_field = text_field, lang_field, id_field
        self.invalid_utf8 = invalid_utf8
        self.lang = normalize_language(lang) if lang else None
        self.description = f"{fmt}:{pattern}"
        if fmt == "text" and "{lang}" not in pattern and self.lang is None:
            raise SourceError(f"{self.description}: say the language, with {{lang}} in the pattern or one "
                              "language in the corpus's languages (e.g. --lang=pan / languages=['pan'])")

    def _matches(self) -> dict[tuple[str, str], list[str]]:
        """(lang, split) -> sorted files; languages from `{lang}` (or the default), splits from `{split}`."""
        import glob
        import re

        regex = re.escape(self.pattern).replace(r"\{lang\}", r"(?P<lang>[^/]+?)").replace(r"\{split\}", r"(?P<split>[^/.]+)")
        regex = regex.replace(r"\*", r"[^/]*").replace(r"\?", r"[^/]")
        matches: dict[tuple[str, str], list[str]] = {}
        paths = sorted(glob.glob(self.pattern.replace("{lang}", "*").replace("{split}", "*")))
        if not paths:
            raise SourceError(f"{self.description}: no file matches {self.pattern!r}")
        for path in paths:
            match = re.fullmatch(regex, path)
            if not match or not Path(path).is_file():
                continue
            parts = match.groupdict()
            lang = normalize_language(parts["lang"]) if parts.get("lang") else (self.lang or "*")
            matches.setdefault((lang, parts.get("split") or "train"), []).append(path)
        return matches

    def splits(self) -> list[str]:
        return sorted({split for _, split in self._matches()})

    def languages(self, split: str) -> list[str]:
        langs = sorted({lang for lang, s in self._matches() if s == split})
        if langs == ["*"]:  # JSONL with a language field, or UDHR with <html lang>: read to find out
            return sorted({doc.lang for doc in self._read(self._matches()[("*", split)], None, 0, 1, None)})
        return langs

    def files(self, lang: str, split: str) -> list[str]:
        matches = self._matches()
        return matches.get((lang, split)) or matches.get(("*", split)) or []

    def _read(self, files, lang, shard_index, num_shards, stats):
        if self.fmt == "text":
            return readers.read_text(files, lang, "text", self.layout, shard_index, num_shards, stats,
                                     self.invalid_utf8)
        if self.fmt == "udhr":
            return readers.read_udhr(files, "udhr", lang if lang != "*" else None, shard_index, num_shards, stats)
        default = lang if lang not in (None, "*") else None
        return readers.read_jsonl(files, "jsonl", default, self.text_field, self.lang_field, self.id_field,
                                  readers.PROVENANCE_FIELDS, shard_index, num_shards, stats, self.invalid_utf8)

    def documents(self, lang, split, shard_index=0, num_shards=1, stats=None):
        matches = self._matches()
        if (lang, split) in matches:
            return self._read(matches[(lang, split)], lang, shard_index, num_shards, stats)
        if ("*", split) not in matches:
            raise SourceError(f"{self.description}: no {split} files for {lang}")
        return (doc for doc in self._read(matches[("*", split)], None, shard_index, num_shards, stats)
                if doc.lang == lang)


class TsvSource(FileSource):
    """Parallel TSV files (src<TAB>tgt) of one language pair; `{split}` in the pattern names splits."""

    kind = "parallel"

    def __init__(self, pattern: str, src_lang: str, tgt_lang: str):
        self.pattern = pattern
        self.pair = (normalize_language(src_lang), normalize_language(tgt_lang))
        self.description = f"tsv:{pattern}"

    def _files(self, split: str) -> list[str]:
        import glob

        pattern = self.pattern.replace("{split}", split)
        if "{split}" not in self.pattern and split != "train":
            return []
        return sorted(glob.glob(pattern))

    def splits(self) -> list[str]:
        return [s for s in _SPLIT_NAMES if self._files(s)]

    def languages(self, split: str) -> list[str]:
        return sorted(set(self.pair))

    def files(self, lang: str, split: str) -> list[str]:
        return self._files(split)

    def pair_languages(self, split):
        return [self.pair]

    def pairs(self, src, tgt, split, shard_index=0, num_shards=1, stats=None):
        if (normalize_language(src), normalize_language(tgt)) != self.pair:
            raise SourceError(f"{self.description} holds {self.pair[0]}-{self.pair[1]} only, not {src}-{tgt}")
        return readers.read_tsv_pairs(self._files(split), src, tgt, 0, 1, shard_index, num_shards, stats)


class BuiltinSource(FileSource):
    """The built-in 20-language corpus (built on first use)."""

    description = "builtin"

    def __init__(self):
        from lowres.data.text.builtin_corpus import build_builtin_corpus

        self.corpus = build_builtin_corpus(progress=False)

    def splits(self) -> list[str]:
        return ["train", "validation"]

    def languages(self, split: str) -> list[str]:
        return list(self.corpus.languages)

    def files(self, lang, split):
        return [str(self.corpus.mono_path(lang, split))]

    def documents(self, lang, split, shard_index=0, num_shards=1, stats=None):
        return readers.read_text(self.corpus.mono_path(lang, split), lang, "builtin", "lines",
                                 shard_index, num_shards, stats)

    def pairs(self, src, tgt, split, shard_index=0, num_shards=1, stats=None):
        """English-aligned pairs (CLDR names): eng_Latn with any other language, either way round."""
        from lowres.data.text.builtin_corpus import ENGLISH

        src, tgt = normalize_language(src), normalize_language(tgt)
        if ENGLISH not in (src, tgt) or src == tgt:
            raise SourceError(f"the builtin corpus pairs English with each other language, not {src}-{tgt}")
        other = tgt if src == ENGLISH else src
        path = self.corpus.parallel_path(other, split)  # columns: English, other
        return readers.read_tsv_pairs([str(path)], src, tgt, 0 if src == ENGLISH else 1, 1 if src == ENGLISH else 0,
                                      shard_index, num_shards, stats)


def open_source(
    source: str | SourceRef, lang: str | None = None, pair: tuple[str, str] | None = None, **options
) -> FileSource:
    """The training source named by SOURCE: builtin, flores:DIR, text:GLOB, jsonl:GLOB, udhr:GLOB, tsv:GLOB.

    `lang` is the language of a single-language text source; `pair` the (src, tgt) of a TSV source;
    `options` go to the JSONL reader (text_field, lang_field, id_field) or text reader (layout).
    """
    ref = SourceRef.parse(source, FILE_KINDS)
    if ref.kind == "builtin":
        return BuiltinSource()
    if ref.kind == "flores":
        return FloresSource(ref.location)
    if ref.kind == "tsv":
        if not pair:
            raise SourceError(f"{ref}: a TSV source needs its language pair, e.g. pairs=[('eng', 'pan')]")
        return TsvSource(ref.location, *pair)
    return PatternSource(ref.kind, ref.location, lang, **options)
