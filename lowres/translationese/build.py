"""Translate a monolingual source into JSONL documents with provenance: sharded, resumable, idempotent.

Each shard process reads its share of the source (`shard_index` of `num_shards`, split by the data
layer's readers), cuts documents into sentences, translates them in length-sorted batches, and
appends whole documents in source order to `DIR/docs-<i>-of-<n>.jsonl`, flushed and fsynced one chunk
at a time. A rerun keeps the complete lines already written (a torn last line is cut), checks they
are the source's first documents, and continues after them. `DIR/docs-<i>-of-<n>.manifest.json`
records the source, translator, settings, counts and time; once every shard is complete
`DIR/manifest.json` sums them. Records read back as `CorpusSpec(kind="translationese",
source="jsonl:DIR/docs-*.jsonl")`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gin
from tqdm.auto import tqdm

from lowres.data.text import readers
from lowres.data.languages import normalize_language
from lowres.data.text.sources import SourceRef, open_source
from lowres.translationese.sentences import join_document, split_document
from lowres.translationese.translators import Translator
from lowres.config_fields import any_value, at_least, one_of, validated
from lowres.errors import ConfigError, DataError, MissingFileError
from lowres.files import write_json

DOCS_GLOB = "docs-*-of-*.jsonl"


@gin.configurable
@validated(
    source=any_value("a SOURCE string"), src=any_value("a language code"), tgt=any_value("a language code"),
    output=any_value("a directory"), split=any_value("a split of the source"), layout=one_of("lines", "paragraphs"),
    batch_size=at_least(1), chunk_documents=at_least(1), max_sentence_chars=at_least(0), shard_index=at_least(0),
    num_shards=at_least(1), max_documents=at_least(1),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What to translate and how; everything but shard, progress and limits must match on resume."""

    source: str  # builtin | flores:DIR | text:GLOB | jsonl:GLOB | udhr:GLOB (lowres.data.text.sources)
    src: str
    tgt: str
    output: str
    split: str | None = None  # default: train, else the source's first split
    layout: str = "lines"  # text sources: one document per line, or blank-line-separated paragraphs
    batch_size: int = 32  # sentences per translator call, sorted by length within a chunk
    chunk_documents: int = 64  # documents translated and written together: the unit of resumption
    max_sentence_chars: int = 0  # > 0: longer sentences are cut at spaces (the MT model's length limit)
    shard_index: int = 0
    num_shards: int = 1
    max_documents: int | None = None  # per shard; for quick runs

    def __post_init__(self):
        object.__setattr__(self, "src", normalize_language(self.src))
        object.__setattr__(self, "tgt", normalize_language(self.tgt))
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise ConfigError(f"--shard_index must lie in [0, --num_shards), got {self.shard_index} of {self.num_shards}")

    def settings(self) -> dict[str, Any]:
        """The fields that decide the output: a resumed shard must be built with the same ones."""
        keep = ("source", "src", "tgt", "split", "layout", "max_sentence_chars", "num_shards", "max_documents")
        return {name: getattr(self, name) for name in keep}


def shard_name(shard_index: int, num_shards: int) -> str:
    return f"docs-{shard_index:05d}-of-{num_shards:05d}"


def source_documents(config: BuildConfig) -> Iterator[readers.Document]:
    """This shard's documents of the source language, in source order."""
    options = {"layout": config.layout} if SourceRef.parse(config.source).kind == "text" else {}
    source = open_source(config.source, lang=config.src, **options)
    split = config.split
    if split is None:
        splits = source.splits()
        split = "train" if "train" in splits else splits[0]
    docs = source.documents(config.src, split, config.shard_index, config.num_shards)
    if config.max_documents is not None:
        docs = (doc for i, doc in zip(range(config.max_documents), docs))
    return docs


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclasses.dataclass
class ChunkStats:
    sentences: int = 0
    tokens: int = 0


def translate_documents(
    docs: Sequence[readers.Document], translator: Translator, config: BuildConfig, stats: ChunkStats | None = None
) -> list[dict[str, Any]]:
    """Records of `docs` translated sentence by sentence in length-sorted batches, reassembled in order."""
    layouts = [split_document(doc.text, config.src, config.max_sentence_chars) for doc in docs]
    flat = [(d, p, s) for d, paragraphs in enumerate(layouts) for p, sents in enumerate(paragraphs)
            for s in range(len(sents))]  # fmt: skip
    order = sorted(range(len(flat)), key=lambda i: len(layouts[flat[i][0]][flat[i][1]][flat[i][2]]))
    translated = [[list(sents) for sents in paragraphs] for paragraphs in layouts]
    for batch in _chunks(order, config.batch_size):
        sentences = [layouts[flat[i][0]][flat[i][1]][flat[i][2]] for i in batch]
        for i, output in zip(batch, translator.translate(sentences, config.src, config.tgt)):
            d, p, s = flat[i]
            translated[d][p][s] = output
        if stats is not None:
            stats.sentences += len(sentences)
            stats.tokens += translator.count_tokens(sentences)
    return [
        {"id": doc.doc_id, "text": join_document(translated[d], config.tgt), "lang": config.tgt,
         "source_lang": config.src, "translator": translator.name, "source_id": doc.doc_id,
         "sentences": sum(len(s) for s in layouts[d])}
        for d, doc in enumerate(docs)
    ]  # fmt: skip


# ---------------------------------------------------------------- files


def complete_records(path: Path) -> list[dict[str, Any]]:
    """The newline-terminated JSON records of a partial output; a torn last line is cut off the file."""
    if not path.exists():
        return []
    with open(path, "rb+") as handle:
        data = handle.read()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            logging.warning("%s: cutting a torn last line (%d bytes) left by an interrupted run", path, len(data) - keep)
            handle.truncate(keep)
    records = []
    for lineno, line in enumerate(data[:keep].decode("utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{lineno}: not a JSON record ({error.msg}); this file was not written by "
                             "`lowres translationese build`, choose another --output") from error
    return records


def read_records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)


def shard_files(directory: str | Path) -> list[Path]:
    """The document shards of a build directory, in shard order; none is an error naming the directory."""
    files = sorted(Path(directory).glob(DOCS_GLOB))
    if not files:
        raise MissingFileError(f"{directory} holds no translationese shards ({DOCS_GLOB}); run "
                                "`lowres translationese build --output=DIR` first")
    return files


def _check_settings(manifest_path: Path, manifest: dict[str, Any]) -> None:
    if not manifest_path.exists():
        return
    old = json.loads(manifest_path.read_text(encoding="utf-8"))
    for key in ("settings", "translator"):
        if old.get(key) != manifest[key]:
            raise DataError(
                f"{manifest_path}: this shard was started with {key} {old.get(key)} but now {manifest[key]}; "
                "rerun with the same settings to resume, or choose another --output"
            )


def build_shard(config: BuildConfig, translator: Translator, progress: bool = True) -> dict[str, Any]:
    """Translates (or finishes translating) one shard and returns its manifest."""
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    name = shard_name(config.shard_index, config.num_shards)
    path, manifest_path = output / f"{name}.jsonl", output / f"{name}.manifest.json"
    manifest = {"shard": name, "source": config.source, "src": config.src, "tgt": config.tgt,
                "translator": translator.describe(), "settings": config.settings(), "status": "running"}
    _check_settings(manifest_path, manifest)
    previous = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    done = complete_records(path)
    total = sum(1 for _ in source_documents(config))
    if len(done) > total:
        raise DataError(f"{path} holds {len(done)} documents but the source shard has {total}: not this source's "
                         "output; choose another --output")
    if previous.get("status") == "complete" and len(done) == total:
        logging.info("%s is complete (%d documents); nothing to do", path, total)
        return previous
    manifest["started"] = previous.get("started", time.time())
    write_json(manifest_path, manifest)

    docs = source_documents(config)
    for lineno, (record, doc) in enumerate(zip(done, docs), 1):
        if record.get("source_id") != doc.doc_id:
            raise DataError(f"{path}:{lineno}: holds source document {record.get('source_id')!r} where the source "
                             f"has {doc.doc_id!r}; the source changed since this shard was started, choose another --output")
    stats, started = ChunkStats(), time.perf_counter()
    bar = tqdm(total=total, initial=len(done), unit="doc", desc=f"translate {name}", disable=not progress,
               dynamic_ncols=True)
    try:
        with open(path, "a", encoding="utf-8") as out:
            for chunk in _chunks(docs, config.chunk_documents):
                records = translate_documents(chunk, translator, config, stats)
                out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
                out.flush()
                os.fsync(out.fileno())
                bar.update(len(chunk))
                seconds = time.perf_counter() - started
                bar.set_postfix(sent_s=f"{stats.sentences / seconds:.1f}", tok_s=f"{stats.tokens / seconds:.0f}")
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    records = list(read_records([path]))
    manifest.update(
        status="complete",
        finished=time.time(),
        counts={"documents": len(records), "sentences": sum(r.get("sentences", 0) for r in records),
                "output_chars": sum(len(r["text"]) for r in records),
                "empty_outputs": sum(1 for r in records if not r["text"].strip())},
        this_run={"documents": len(records) - len(done), "resumed_after": len(done), "sentences": stats.sentences,
                  "tokens": stats.tokens, "seconds": seconds,
                  "sentences_per_sec": stats.sentences / seconds if seconds > 0 else 0.0,
                  "tokens_per_sec": stats.tokens / seconds if seconds > 0 else 0.0},
    )  # fmt: skip
    write_json(manifest_path, manifest)
    logging.info("%s: %d documents (%d new) at %.1f sentences/s, %.0f tokens/s", path, len(records),
                 len(records) - len(done), manifest["this_run"]["sentences_per_sec"], manifest["this_run"]["tokens_per_sec"])
    merge_manifests(output, config.num_shards)
    return manifest


def merge_manifests(output: str | Path, num_shards: int) -> dict[str, Any] | None:
    """Writes DIR/manifest.json summing the shards once all `num_shards` are complete; None before that."""
    output = Path(output)
    shards = []
    for index in range(num_shards):
        path = output / f"{shard_name(index, num_shards)}.manifest.json"
        if not path.exists():
            return None
        shard = json.loads(path.read_text(encoding="utf-8"))
        if shard.get("status") != "complete":
            return None
        shards.append(shard)
    counts = {key: sum(s["counts"][key] for s in shards) for key in shards[0]["counts"]}
    merged = {key: shards[0][key] for key in ("source", "src", "tgt", "translator", "settings")}
    merged.update(num_shards=num_shards, counts=counts, started=min(s["started"] for s in shards),
                  finished=max(s["finished"] for s in shards), shards=[s["shard"] for s in shards],
                  data_source=f"jsonl:{output}/{DOCS_GLOB}")
    write_json(output / "manifest.json", merged)
    return merged
