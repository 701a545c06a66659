"""A held-out split made of whole documents, for sources that have none (FLORES-200 dev is one split:
training and evaluating on it would score text the model has seen).

Documents are held out by a seeded hash of their id, and FLORES ids are the same in every language
(multi-way parallel), so every language holds out the same documents. Each language's text goes to
`DIR/<lang>.train.txt` and `DIR/<lang>.validation.txt`, one document per line, which
`text:DIR/{lang}.{split}.txt` reads back as a source with train and validation splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lowres.data.languages import normalize_language
from lowres.data.text.sources import open_source
from lowres.errors import ConfigError
from lowres.files import write_atomic, write_json

RECORD_FILE = "split.json"


def heldout_ids(doc_ids: Sequence[str], fraction: float, seed: int = 0) -> set[str]:
    """The ids of about `fraction` of the documents (at least one, never all), chosen by a seeded hash."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"heldout fraction {fraction} must lie between 0 and 1")
    if len(doc_ids) < 2:
        raise ConfigError(f"{len(doc_ids)} document(s): a held-out split needs at least 2")
    ranked = sorted(doc_ids, key=lambda doc_id: hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest())
    count = min(max(1, round(fraction * len(doc_ids))), len(doc_ids) - 1)
    return set(ranked[:count])


def _trim(texts: list[str], max_bytes: int | None) -> list[str]:
    """The first documents whose UTF-8 size stays within `max_bytes` (a smaller language for a recipe)."""
    if max_bytes is None:
        return texts
    kept, size = [], 0
    for text in texts:
        size += len(text.encode("utf-8")) + 1
        if size > max_bytes:
            break
        kept.append(text)
    return kept


def write_heldout_split(source: str, languages: Sequence[str], output: str | Path, *, fraction: float = 0.2,
                        source_split: str = "dev", seed: int = 0,
                        max_train_bytes: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Writes the train and validation files of `languages` from `source`; returns the record also
    written to DIR/split.json (documents, lines and bytes of each part)."""
    output = Path(output)
    opened = open_source(source)
    languages = [normalize_language(lang) for lang in languages]
    limits = {normalize_language(k): int(v) for k, v in (max_train_bytes or {}).items()}
    unknown = sorted(set(limits) - set(languages))
    if unknown:
        raise ConfigError(f"a byte limit names {', '.join(unknown)}, which is not among the languages split")
    documents = {lang: list(opened.documents(lang, source_split)) for lang in languages}
    held = heldout_ids(sorted({d.doc_id for docs in documents.values() for d in docs}), fraction, seed)
    record: dict[str, Any] = {"source": source, "source_split": source_split, "fraction": fraction, "seed": seed,
                              "heldout_documents": len(held), "languages": {}}
    for lang, docs in documents.items():
        parts = {"train": [d.text.replace("\n", " ") for d in docs if d.doc_id not in held],
                 "validation": [d.text.replace("\n", " ") for d in docs if d.doc_id in held]}
        parts["train"] = _trim(parts["train"], limits.get(lang))
        record["languages"][lang] = {}
        for split, texts in parts.items():
            write_atomic(output / f"{lang}.{split}.txt", "".join(t + "\n" for t in texts))
            record["languages"][lang][split] = {"documents": len(texts),
                                                "bytes": sum(len(t.encode("utf-8")) + 1 for t in texts)}
    write_json(output / RECORD_FILE, record)
    return record
