"""Reads held-out documents per language from a SOURCE string: builtin, flores:DIR or text:FILE."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from lowres.data import readers
from lowres.data.languages import normalize_language


class SourceError(ValueError):
    """A SOURCE string that cannot be read; the message says which part and what to do."""


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
    wanted = [normalize_language(code) for code in langs] if langs else None
    kind, _, arg = source.partition(":")
    if kind == "builtin" and not arg:
        return _builtin(split or "validation", wanted)
    if kind == "flores":
        return _flores(Path(arg), split or "dev", wanted)
    if kind == "text":
        if not lang:
            raise SourceError("text:FILE needs --lang=CODE to say which language the file holds")
        return _text(Path(arg), normalize_language(lang))
    raise SourceError(f"unknown data source {source!r}; use builtin, flores:DIR or text:FILE")


def _lines_of(path: Path, lang: str) -> list[str]:
    return _texts(readers.read_text(path, lang, "builtin"), path)


def _builtin(split: str, wanted: list[str] | None) -> Documents:
    from lowres.data.builtin_corpus import build_builtin_corpus

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
