"""The two units of work of a cache build, shared by every runner (local processes, Beam workers).

`tokenize_part` reads one part of one entry on this host's shard, tokenizes it and writes the part's
arrays and record; `finalize_entry` joins an entry's parts into the entry's arrays and record. Both
are plain functions of picklable arguments; the local pool and the Beam pipeline call the very same
ones, so both runners write byte-identical caches. This module (and what it imports) needs no
TensorFlow: worker processes import it in a fresh interpreter.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lowres.data.cache.sources import PAIR, CacheSource, Entry
from lowres.data.cache.store import (
    FORMAT_VERSION,
    OFFSET_DTYPE,
    RECORD,
    ArrayWriter,
    array_names,
    damage,
    entry_dir,
    part_dir,
    read_record,
    write_record,
)
from lowres.data.cache.tokenizer import Encoder, TokenizerSpec
from lowres.errors import DataError
from lowres.files import move_atomic

__all__ = ["BuildContext", "PartTask", "finalize_entry", "run_task", "tokenize_part"]

BATCH_DOCUMENTS = 512
BATCH_CHARS = 1 << 20
_COPY_CHUNK = 16 << 20


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """Everything a worker needs besides the task: where, what text, which vocabulary, which host."""

    directory: str
    source: CacheSource
    tokenizer: TokenizerSpec
    shard_index: int = 0
    num_shards: int = 1
    durable: bool = True


@dataclasses.dataclass(frozen=True)
class PartTask:
    """Part `part` of `num_parts` of one entry; `source` is the entry's source fingerprint (recorded)."""

    entry: str
    part: int
    num_parts: int
    source: dict


_ENCODERS: dict[str, Encoder] = {}


def _encoder(spec: TokenizerSpec) -> Encoder:
    key = spec.tokenizer_sha256
    if key not in _ENCODERS:
        _ENCODERS[key] = spec.encoder()
    return _ENCODERS[key]


Report = Callable[[int, int, int], None]  # (documents, tokens, UTF-8 bytes) just tokenized


def run_task(ctx: BuildContext, task: PartTask, report: Report | None = None) -> dict[str, Any] | None:
    """Tokenizes one part. The only part of an entry is finalized at once (no part record, one fsync
    less) and the entry's record returned; otherwise None (finalize_entry runs when all parts are done)."""
    if task.num_parts == 1:  # written straight into the entry's directory
        part = tokenize_part(ctx, task, report, keep_record=False)
        return finalize_entry(ctx, task.entry, 1, task.source, parts=[part])
    tokenize_part(ctx, task, report)
    return None


def tokenize_part(ctx: BuildContext, task: PartTask, report: Report | None = None,
                  keep_record: bool = True) -> dict[str, Any]:
    """Tokenizes one part and writes parts/<entry>/pNNNNN-of-NNNNN/{arrays, record.json} (the record
    only with `keep_record`, which lets an interrupted build keep the part); returns the record."""
    entry = Entry.parse(task.entry)
    if keep_record or task.num_parts > 1:
        out = part_dir(Path(ctx.directory), entry.name, task.part, task.num_parts)
    else:
        out = entry_dir(Path(ctx.directory), entry.name)
    (out / RECORD).unlink(missing_ok=True)  # until a new record is written, this is not built
    encoder = _encoder(ctx.tokenizer)
    writers = {field: {role: ArrayWriter(out / name, ctx.tokenizer.dtype if role == "tokens" else OFFSET_DTYPE)
                       for role, name in array_names(field).items()} for field in entry.fields}
    ends = dict.fromkeys(entry.fields, 0)
    counts = {"documents": 0, "text_bytes": 0}
    try:
        for field in entry.fields:
            writers[field]["offsets"].append(np.zeros(1, OFFSET_DTYPE))
        batch: list = []
        chars = 0

        def flush() -> None:
            nonlocal batch, chars
            if not batch:
                return
            columns = [batch] if entry.kind != PAIR else [[r[0] for r in batch], [r[1] for r in batch]]
            n_tokens = n_bytes = 0
            for field, texts in zip(entry.fields, columns):
                flat, lengths = encoder.encode_batch(texts)
                writers[field]["tokens"].append(flat)
                writers[field]["offsets"].append(ends[field] + np.cumsum(lengths))
                ends[field] += int(lengths.sum())
                n_tokens += len(flat)
                n_bytes += sum(len(text.encode("utf-8")) for text in texts)
            counts["documents"] += len(batch)
            counts["text_bytes"] += n_bytes
            if report is not None:
                report(len(batch), n_tokens, n_bytes)
            batch, chars = [], 0

        shard = ctx.shard_index + ctx.num_shards * task.part
        for record in ctx.source.records(entry, shard, ctx.num_shards * task.num_parts):
            if entry.kind == PAIR:
                record = (record[0], record[1])
                chars += len(record[0]) + len(record[1])
            else:
                chars += len(record)
            batch.append(record)
            if len(batch) >= BATCH_DOCUMENTS or chars >= BATCH_CHARS:
                flush()
        flush()
        fields = {field: {"documents": counts["documents"], "tokens": ends[field],
                          "files": {role: writer.commit(ctx.durable) for role, writer in writers[field].items()}}
                  for field in entry.fields}
    except BaseException:
        for roles in writers.values():
            for writer in roles.values():
                if not writer.handle.closed:
                    writer.abort()
        raise
    record = {
        "format_version": FORMAT_VERSION,
        "entry": entry.name,
        "kind": entry.kind,
        "part": task.part,
        "num_parts": task.num_parts,
        "shard": [ctx.shard_index, ctx.num_shards],
        "source": task.source,
        "documents": counts["documents"],
        "tokens": sum(ends.values()),
        "text_bytes": counts["text_bytes"],
        "dtype": ctx.tokenizer.dtype.name,
        "fields": fields,
    }
    if keep_record:
        write_record(out, record)
    return record


def usable_part(ctx: BuildContext, task: PartTask) -> bool:
    """True when an interrupted build already finished this part (same source, intact files)."""
    folder = part_dir(Path(ctx.directory), task.entry, task.part, task.num_parts)
    record = read_record(folder)
    return (record is not None and record["source"]["fingerprint"] == task.source["fingerprint"]
            and record["shard"] == [ctx.shard_index, ctx.num_shards] and damage(folder, record, full=False) is None)


def finalize_entry(ctx: BuildContext, name: str, num_parts: int, source: dict,
                   parts: list[dict] | None = None) -> dict[str, Any]:
    """Joins the entry's finished parts (their records read from disk unless given) into
    entries/<entry>/ and writes its record (returned)."""
    entry = Entry.parse(name)
    directory = Path(ctx.directory)
    folders = [part_dir(directory, name, p, num_parts) for p in range(num_parts)]
    if parts is None:
        parts = [read_record(folder) for folder in folders]
    for folder, record in zip(folders, parts):
        if record is None or record["source"]["fingerprint"] != source["fingerprint"]:
            raise DataError(f"token cache {directory}: part {folder} of {name} is missing; build again")
    final = entry_dir(directory, name)
    final.mkdir(parents=True, exist_ok=True)
    (final / RECORD).unlink(missing_ok=True)  # from here until the new record, the entry is not built
    fields: dict[str, Any] = {}
    for field in entry.fields:
        names = array_names(field)
        if num_parts == 1:
            files = {}
            for role, filename in names.items():
                if (folders[0] / filename).exists():  # else run_task wrote it in place
                    move_atomic(folders[0] / filename, final / filename)
                info = dict(parts[0]["fields"][field]["files"][role])
                info["mtime_ns"] = (final / filename).stat().st_mtime_ns
                files[role] = info
        else:
            files = _concatenate(ctx, final, names, folders, [p["fields"][field] for p in parts])
        fields[field] = {"documents": sum(p["fields"][field]["documents"] for p in parts),
                         "tokens": sum(p["fields"][field]["tokens"] for p in parts), "files": files}
    record = {
        "format_version": FORMAT_VERSION,
        "entry": name,
        "kind": entry.kind,
        "num_parts": num_parts,
        "shard": [ctx.shard_index, ctx.num_shards],
        "source": source,
        "documents": sum(p["documents"] for p in parts),
        "tokens": sum(p["tokens"] for p in parts),
        "text_bytes": sum(p["text_bytes"] for p in parts),
        "dtype": ctx.tokenizer.dtype.name,
        "fields": fields,
        "built_at": time.time(),
    }
    write_record(final, record)
    if (directory / "parts" / name).exists():
        shutil.rmtree(directory / "parts" / name, ignore_errors=True)
    return record


def _concatenate(ctx: BuildContext, final: Path, names: dict[str, str], folders: list[Path], infos: list[dict]) -> dict:
    tokens = ArrayWriter(final / names["tokens"], ctx.tokenizer.dtype)
    offsets = ArrayWriter(final / names["offsets"], OFFSET_DTYPE)
    try:
        offsets.append(np.zeros(1, OFFSET_DTYPE))
        base = 0
        for folder, info in zip(folders, infos):
            with open(folder / names["tokens"], "rb") as handle:
                while chunk := handle.read(_COPY_CHUNK):
                    tokens.append_bytes(chunk)
            part_offsets = np.fromfile(folder / names["offsets"], OFFSET_DTYPE)
            offsets.append(part_offsets[1:] + base)
            base += info["tokens"]
        return {"tokens": tokens.commit(ctx.durable), "offsets": offsets.commit(ctx.durable)}
    except BaseException:
        for writer in (tokens, offsets):
            if not writer.handle.closed:
                writer.abort()
        raise
