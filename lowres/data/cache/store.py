"""The on-disk format of a token cache, its checks, and the memory-mapped reader.

Layout of one cache directory (one corpus x vocabulary x host shard, see build.cache_key):

    manifest.json                       what the cache holds; entries marked "complete" are usable
    entries/<entry>/<field>.tokens.bin  the entry's documents' ids concatenated, little-endian uint16/uint32
    entries/<entry>/<field>.offsets.bin int64 document offsets into the tokens, n_documents + 1 of them
    entries/<entry>/record.json         the entry's sizes and checksums, written after its arrays
    parts/<entry>/pNNNNN-of-NNNNN/      a finished part of a multi-part entry not yet joined (same files)
    .lock                               held (flock) by the process building the cache

<entry> is mono/<lang>/<split> (field "text") or pair/<src>-<tgt>/<split> (fields "src", "tgt").
Raw little-endian arrays, not .npy or ArrayRecord: they are written as a stream (an entry's length is
known only at its end), mapped with np.memmap without a copy, and a window is two offsets and a slice;
the manifest holds what a header would (dtype, lengths) and more (checksums).

Every file is written to a temporary name and renamed; an entry's record.json is written after its
arrays and the manifest after the records, so whatever a kill leaves, a recorded file is whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lowres.data.cache.sources import Entry, mono_entry, pair_entry
from lowres.errors import ConfigError, DataError, MissingFileError
from lowres.files import AtomicFile, read_json, write_json

__all__ = ["VERIFY_MODES", "TokenArrays", "TokenCache", "open_token_cache"]

FORMAT = "lowres-token-cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
RECORD = "record.json"
OFFSET_DTYPE = np.dtype("<i8")
VERIFY_MODES = ("auto", "full", "sizes")
# verify="auto" hashes every file while a cache is at most this big (well under a second with SHA-NI).
AUTO_FULL_VERIFY_BYTES = 1 << 30
_CHUNK = 8 << 20


def entry_dir(directory: Path, name: str) -> Path:
    return directory / "entries" / name


def part_dir(directory: Path, name: str, part: int, num_parts: int) -> Path:
    return directory / "parts" / name / f"p{part:05d}-of-{num_parts:05d}"


def array_names(field: str) -> dict[str, str]:
    return {"tokens": f"{field}.tokens.bin", "offsets": f"{field}.offsets.bin"}


# ---------------------------------------------------------------- writing


class ArrayWriter:
    """Streams one little-endian array to a temporary file, hashing as it goes; `commit` renames it."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype = path, np.dtype(dtype)
        self.handle = AtomicFile(path)
        self.digest = hashlib.sha256()
        self.count = 0

    def append(self, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=self.dtype).tobytes()
        self.handle.write(data)
        self.digest.update(data)
        self.count += len(values)

    def append_bytes(self, data: bytes) -> None:
        self.handle.write(data)
        self.digest.update(data)
        self.count += len(data) // self.dtype.itemsize

    def commit(self, durable: bool = True) -> dict[str, Any]:
        self.handle.commit(durable=durable)
        stat = self.path.stat()
        return {"name": self.path.name, "bytes": stat.st_size, "sha256": self.digest.hexdigest(),
                "mtime_ns": stat.st_mtime_ns, "length": self.count}

    def abort(self) -> None:
        self.handle.abort()


def write_record(directory: Path, record: Mapping[str, Any]) -> None:
    write_json(directory / RECORD, dict(record), indent=1)


def read_record(directory: Path) -> dict | None:
    """The record.json in `directory`, or None when absent or unreadable (then the work is redone)."""
    try:
        record = read_json(directory / RECORD, "token cache record")
    except (MissingFileError, DataError):
        return None
    return record if isinstance(record, dict) and record.get("format_version") == FORMAT_VERSION else None


# ---------------------------------------------------------------- checking


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def record_files(record: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(field, "tokens"|"offsets", file info) of every array a record lists."""
    for field, info in record["fields"].items():
        for role in ("tokens", "offsets"):
            yield field, role, info["files"][role]


def record_bytes(record: Mapping[str, Any]) -> int:
    return sum(info["bytes"] for _, _, info in record_files(record))


def damage(directory: Path, record: Mapping[str, Any], full: bool) -> str | None:
    """What is wrong with the files a record lists in `directory` (None when intact).

    Sizes are always compared; checksums when `full`, or for a file whose mtime differs from the
    recorded one (something wrote to it after the build)."""
    for _, _, info in record_files(record):
        path = directory / info["name"]
        try:
            stat = path.stat()
        except FileNotFoundError:
            return f"{path} is missing"
        if stat.st_size != info["bytes"]:
            return f"{path} has {stat.st_size} bytes but the manifest records {info['bytes']} (truncated or overwritten)"
        if (full or stat.st_mtime_ns != info["mtime_ns"]) and sha256_file(path) != info["sha256"]:
            return f"{path} is corrupted: its SHA-256 differs from the one recorded when it was written"
    return None


def verify_full(mode: str, total_bytes: int) -> bool:
    if mode not in VERIFY_MODES:
        raise ConfigError(f"verify must be one of {VERIFY_MODES}, got {mode!r}")
    return mode == "full" or (mode == "auto" and total_bytes <= AUTO_FULL_VERIFY_BYTES)


def damaged_message(directory: Path, entry: str, problem: str) -> str:
    return (f"token cache {directory}: entry {entry} is damaged: {problem}. Delete {entry_dir(directory, entry)} "
            f"(or the whole cache directory) and build again, or build with repair=True to rebuild damaged entries")


# ---------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class TokenArrays:
    """One field of one entry: `tokens` (all documents' ids concatenated) and int64 `offsets`
    (document i is tokens[offsets[i]:offsets[i + 1]]), both read-only memory maps."""

    tokens: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"document {index} out of range ({len(self)} documents)")
        index %= len(self)
        return self.tokens[self.offsets[index]:self.offsets[index + 1]]

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def _memmap(path: Path, dtype: np.dtype, length: int) -> np.ndarray:
    if length == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(length,))


class TokenCache:
    """A verified token cache directory; arrays are memory-mapped on demand."""

    def __init__(self, directory: Path, manifest: dict, report=None):
        self.directory = Path(directory)
        self.manifest = manifest
        self.report = report  # a BuildReport when returned by build_token_cache

    def __repr__(self) -> str:
        return f"TokenCache({str(self.directory)!r}, {len(self.entries)} entries)"

    @property
    def entries(self) -> list[str]:
        return [name for name, info in self.manifest["entries"].items() if info.get("status") == "complete"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"]).newbyteorder("<")

    @property
    def vocabulary_fingerprint(self) -> str:
        return self.manifest["vocabulary"]["fingerprint"]

    @property
    def shard(self) -> tuple[int, int]:
        return self.manifest["shard"]["index"], self.manifest["shard"]["count"]

    def record(self, name: str) -> dict:
        info = self.manifest["entries"].get(name)
        if info is None or info.get("status") != "complete":
            known = ", ".join(self.entries[:6]) + (", ..." if len(self.entries) > 6 else "")
            raise DataError(f"token cache {self.directory} has no complete entry {name!r}; it has: {known or 'none'}")
        return info

    def arrays(self, name: str) -> dict[str, TokenArrays]:
        """field -> TokenArrays of one entry ("text" for mono, "src" and "tgt" for pairs)."""
        record = self.record(name)
        folder = entry_dir(self.directory, name)
        found = {}
        for field, info in record["fields"].items():
            files = info["files"]
            tokens = _memmap(folder / files["tokens"]["name"], self.dtype, files["tokens"]["length"])
            offsets = _memmap(folder / files["offsets"]["name"], OFFSET_DTYPE, files["offsets"]["length"])
            if len(offsets) != info["documents"] + 1 or offsets[0] != 0 or offsets[-1] != len(tokens):
                raise DataError(damaged_message(self.directory, name, f"{folder / files['offsets']['name']} does "
                                                "not match its tokens"))
            found[field] = TokenArrays(tokens, offsets)
        return found

    def mono(self, lang: str, split: str) -> TokenArrays:
        return self.arrays(mono_entry(lang, split))["text"]

    def pair(self, src: str, tgt: str, split: str) -> tuple[TokenArrays, TokenArrays]:
        arrays = self.arrays(pair_entry(src, tgt, split))
        return arrays["src"], arrays["tgt"]

    def verify(self, mode: str = "full", entries: Sequence[str] | None = None) -> None:
        """Raises DataError naming the first damaged file (mode: "full" hashes everything)."""
        names = list(entries) if entries is not None else self.entries
        full = verify_full(mode, sum(record_bytes(self.record(n)) for n in names))
        for name in names:
            problem = damage(entry_dir(self.directory, name), self.record(name), full)
            if problem:
                raise DataError(damaged_message(self.directory, name, problem))

    @property
    def num_tokens(self) -> int:
        return sum(self.record(n)["tokens"] for n in self.entries)


def read_manifest(directory: Path) -> dict | None:
    """The manifest, None when there is none; one of another format raises DataError."""
    path = directory / MANIFEST
    if not path.exists():
        return None
    manifest = read_json(path, "token cache manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a lowres token cache manifest; remove {directory} or choose another directory")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{path} is token cache format {manifest.get('format_version')}, this lowres reads format "
                        f"{FORMAT_VERSION}; delete {directory} and build again")
    return manifest


def check_vocabulary(directory: Path, manifest: Mapping[str, Any], tokenizer) -> None:
    """A DataError when the cache was built with another vocabulary (or another tokenizer model)."""
    recorded = manifest["vocabulary"]
    if recorded["fingerprint"] != tokenizer.fingerprint:
        raise DataError(
            f"token cache {directory} was built with vocabulary {recorded['fingerprint']} "
            f"({recorded.get('description') or 'unknown file'}) but this run uses {tokenizer.fingerprint} "
            f"({tokenizer.description or 'given vocabulary'}); its ids would mean other pieces. Build the cache for "
            "this vocabulary (build_token_cache picks a directory per vocabulary fingerprint) or point to that one"
        )
    if recorded["tokenizer_sha256"] != tokenizer.tokenizer_sha256:
        raise DataError(
            f"token cache {directory} was tokenized by a different model ({recorded['tokenizer_sha256']}) than this "
            f"vocabulary loads to now ({tokenizer.tokenizer_sha256}; did seqio change?); build it again"
        )


def open_token_cache(
    directory: str | os.PathLike,
    vocabulary=None,
    *,
    num_sentinels: int | None = None,
    entries: Sequence[str] | None = None,
    verify: str = "auto",
    source=None,
) -> TokenCache:
    """Opens a built cache for reading, refusing anything that is not whole.

    vocabulary: when given (file, loaded vocabulary or TokenizerSpec), must be the one the cache was
      built with. entries: the entries the caller needs (default: all in the manifest), each complete.
    verify: "auto" (sizes always; checksums of every file while the cache is <= 1 GiB, else of files
      modified since the build), "full" or "sizes".
    source: a CacheSource (or CorpusSpec) to check for staleness: an entry whose files changed since
      it was built is refused (build_token_cache rebuilds it instead).
    """
    from lowres.data.cache.tokenizer import tokenizer_spec

    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        hint = " (an interrupted build left parts: run the build again to complete it)" if (
            directory / "entries").exists() or (directory / "parts").exists() else ""
        raise MissingFileError(f"{directory} holds no token cache: {MANIFEST} is missing{hint}")
    if vocabulary is not None:
        check_vocabulary(directory, manifest, tokenizer_spec(vocabulary, num_sentinels))
    names = list(entries) if entries is not None else list(manifest["entries"])
    incomplete = [n for n in names if manifest["entries"].get(n, {}).get("status") != "complete"]
    if incomplete:
        total = len(names)
        raise DataError(
            f"token cache {directory} is partial: {len(incomplete)} of {total} entries are not built "
            f"(e.g. {', '.join(incomplete[:3])}); run build_token_cache with the same corpus and vocabulary to "
            "complete it"
        )
    if source is not None:
        from lowres.data.cache.build import source_fingerprint
        from lowres.data.cache.sources import as_source

        source = as_source(source)
        for name in names:
            current = source_fingerprint(source, Entry.parse(name))
            if current["fingerprint"] != manifest["entries"][name]["source"]["fingerprint"]:
                raise DataError(f"token cache {directory}: entry {name} is stale: "
                                f"{describe_change(manifest['entries'][name]['source'], current)}; "
                                "build_token_cache rebuilds it")
    cache = TokenCache(directory, manifest)
    cache.verify(verify, names)
    return cache


def describe_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Which source files changed between two source fingerprints, in words."""
    before = {f[0]: f[1:] for f in old.get("files", [])}
    after = {f[0]: f[1:] for f in new.get("files", [])}
    changes = [f"{p} was added" for p in after if p not in before]
    changes += [f"{p} was removed" for p in before if p not in after]
    changes += [f"{p} changed (size {before[p][0]} -> {after[p][0]} bytes)" if before[p][0] != after[p][0]
                else f"{p} was modified (mtime changed)" for p in after if p in before and before[p] != after[p]]
    if not changes:
        return "its reader settings changed"
    return "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")

