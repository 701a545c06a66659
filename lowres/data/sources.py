"""Reads held-out documents per language from a SOURCE string: builtin, flores:DIR or text:FILE."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

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


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise SourceError(f"{path} does not exist or is not a file")
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise SourceError(f"{path} holds no text (every line is empty)")
    return lines


def _builtin(split: str, wanted: list[str] | None) -> Documents:
    from lowres.data.builtin_corpus import build_builtin_corpus

    corpus = build_builtin_corpus(progress=False)
    if split not in ("train", "validation"):
        raise SourceError(f"the builtin corpus has splits train and validation, not {split!r}")
    langs = wanted or list(corpus.languages)
    missing = [lang for lang in langs if lang not in corpus.languages]
    if missing:
        raise SourceError(f"the builtin corpus has no {missing}; it covers {list(corpus.languages)}")
    docs = {lang: _read_lines(corpus.mono_path(lang, split)) for lang in langs}
    reference = {lang: _read_lines(corpus.mono_path(lang, "train")) for lang in langs}
    return Documents(split, docs, reference, f"builtin ({split})")


def _flores(directory: Path, split: str, wanted: list[str] | None) -> Documents:
    if not directory.is_dir():
        raise SourceError(f"flores:{directory}: not a directory (expected files <code>.{split})")
    by_lang = {}
    for path in sorted(directory.glob(f"*.{split}")):
        try:
            by_lang[normalize_language(path.stem)] = path
        except ValueError:
            continue
    if not by_lang:
        raise SourceError(f"flores:{directory}: no <code>.{split} files found; pass --split to choose another")
    langs = wanted or sorted(by_lang)
    missing = [lang for lang in langs if lang not in by_lang]
    if missing:
        raise SourceError(f"flores:{directory}: no {split} file for {missing}")
    docs = {lang: _read_lines(by_lang[lang]) for lang in langs}
    return Documents(split, docs, None, f"flores:{directory} ({split})")


def _text(path: Path, lang: str) -> Documents:
    return Documents("text", {lang: _read_lines(path)}, None, f"text:{path}")
