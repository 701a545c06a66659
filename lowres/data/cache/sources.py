"""What a token cache holds: named entries of text, from a small picklable source object.

An entry is one language's split (`mono/<lang>/<split>`: an iterable of texts) or one pair's split
(`pair/<src>-<tgt>/<split>`: an iterable of (src, tgt) texts). A `CacheSource` lists its entries,
says which files each one is read from (their names, sizes and modification times fingerprint
the entry, so a changed file makes just that entry stale) and yields one shard of an entry's
records. `CorpusSource` serves any `CorpusSpec` (monolingual, translationese and parallel corpora;
files or TFDS); subclass `CacheSource` for anything else. Sources travel to worker processes and
Beam workers by pickle, so they hold only plain data and must not need TensorFlow to read files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lowres.data.config import MixingConfig
from lowres.data.text import corpora
from lowres.data.text.corpora import CorpusSpec
from lowres.errors import ConfigError

__all__ = ["CacheSource", "CorpusSource", "Entry", "as_source", "mono_entry", "pair_entry"]

MONO, PAIR = "mono", "pair"
FIELDS = {MONO: ("text",), PAIR: ("src", "tgt")}


def mono_entry(lang: str, split: str) -> str:
    """The entry name of one language's split: `mono/<lang>/<split>`."""
    return f"{MONO}/{lang}/{split}"


def pair_entry(src: str, tgt: str, split: str) -> str:
    """The entry name of one pair's split: `pair/<src>-<tgt>/<split>`."""
    return f"{PAIR}/{src}-{tgt}/{split}"


@dataclasses.dataclass(frozen=True)
class Entry:
    """One unit of the cache. `group` is what progress counts (a language or a pair)."""

    name: str
    kind: str  # "mono" or "pair"
    group: str
    split: str

    @property
    def fields(self) -> tuple[str, ...]:
        return FIELDS[self.kind]

    @classmethod
    def parse(cls, name: str) -> Entry:
        parts = name.split("/")
        if len(parts) != 3 or parts[0] not in FIELDS or not parts[1] or not parts[2]:
            raise ConfigError(f"token cache entry {name!r} is not mono/<lang>/<split> or pair/<src>-<tgt>/<split>")
        return cls(name, parts[0], parts[1], parts[2])


class CacheSource:
    """The text behind a cache. Subclasses implement every method; instances must pickle."""

    @property
    def name(self) -> str:
        """A short name for the cache directory and messages (letters, digits, '-', '_')."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """JSON-able settings the text depends on besides the files (reader options, cleaning, ...).

        It goes into the cache key: two sources with equal identity and files give equal text."""
        raise NotImplementedError

    def entries(self) -> list[Entry]:
        """Every entry this source offers, in a fixed order."""
        raise NotImplementedError

    def source_files(self, entry: Entry) -> list[str]:
        """The files the entry is read from: their names, sizes and mtimes fingerprint it."""
        raise NotImplementedError

    def num_parts(self, entry: Entry, shard_index: int, num_shards: int, wanted: int) -> int:
        """Into how many parts (<= wanted) one host's shard of an entry may be split so that part p of P
        is `records(entry, shard_index + num_shards * p, num_shards * P)` and the parts together hold
        exactly that host's records. 1 is always safe."""
        return 1

    def records(self, entry: Entry, shard_index: int, num_shards: int) -> Iterator:
        """Shard `shard_index` of `num_shards` of the entry: texts (mono) or (src, tgt) tuples (pair)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class CorpusSource(CacheSource):
    """The entries of a `CorpusSpec`: mono/<lang>/<split> for its languages (unless kind="parallel"),
    pair/<src>-<tgt>/<split> for its pairs, over its seqio splits (or `splits`)."""

    spec: CorpusSpec
    splits: tuple[str, ...] | None = None

    def __post_init__(self):
        # What a worker unpickles must not drag in tasks/ (seqio, TensorFlow) or unrelated settings:
        # the translation objective and the mixing weights do not change the text.
        reduced = dataclasses.replace(self.spec, translation=None, mixing=MixingConfig(), translation_share=0.0)
        object.__setattr__(self, "spec", reduced)
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits))

    @property
    def name(self) -> str:
        return self.spec.name

    def split_map(self) -> dict[str, str]:
        """corpora.split_map, once per source object (listing a FLORES directory takes a stat per file)."""
        if "_split_map" not in self.__dict__:
            object.__setattr__(self, "_split_map", corpora.split_map(self.spec))
        return self.__dict__["_split_map"]

    def identity(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "corpus": spec.name,
            "source": spec.source,
            "splits": dict(spec.splits) if spec.splits is not None else None,
            "text_field": spec.text_field,
            "lang_field": spec.lang_field,
            "id_field": spec.id_field,
            "layout": spec.layout,
            "invalid_utf8": spec.invalid_utf8,
            "tfds_data_dir": spec.tfds_data_dir,
            # a one-language text source reads its language from the spec
            "single_language": spec.languages[0] if not isinstance(spec.languages, str) and len(spec.languages) == 1
            and spec.ref.kind == "text" else None,
            "cleaning": dataclasses.asdict(spec.cleaning) if spec.cleaning is not None else None,
        }

    def _splits(self) -> list[str]:
        available = self.split_map()
        if self.splits is None:
            return list(available)
        missing = [split for split in self.splits if split not in available]
        if missing:
            raise ConfigError(f"corpus {self.spec.name!r} has no split {missing}; it has {list(available)}")
        return list(self.splits)

    def entries(self) -> list[Entry]:
        splits = self._splits()
        found: list[Entry] = []
        if self.spec.kind != "parallel":
            langs = corpora.languages(self.spec)
            found += [Entry(mono_entry(lang, split), MONO, lang, split) for split in splits for lang in langs]
        pairs = corpora.pairs(self.spec)
        found += [Entry(pair_entry(src, tgt, split), PAIR, f"{src}-{tgt}", split)
                  for split in splits for src, tgt in pairs]
        return found

    def source_files(self, entry: Entry) -> list[str]:
        spec = self.spec
        if spec.ref.kind == "tfds":
            return []  # TFDS datasets are versioned and immutable; the version is in the identity
        source_split = self.split_map()[entry.split]
        if entry.kind == MONO:
            files = corpora.source_files(spec, entry.group, entry.split)
        else:
            src, tgt = entry.group.split("-")
            source = corpora.pair_source(spec)
            files = sorted(set(source.files(src, source_split)) | set(source.files(tgt, source_split)))
        if spec.ref.kind == "flores":  # FLORES groups sentences into documents by the metadata's URLs
            location = Path(spec.ref.location)
            files += [str(p) for p in (location.parent / f"metadata_{source_split}.tsv",
                                       location / f"metadata_{source_split}.tsv") if p.is_file()]
        return [str(f) for f in files]

    def num_parts(self, entry: Entry, shard_index: int, num_shards: int, wanted: int) -> int:
        # The readers shard by whole files when there are at least as many files as shards, else by
        # records of the concatenated stream. Splitting into P parts stays exact when both the host's
        # shard and its parts shard by whole files: len(files) >= num_shards * P.
        if wanted <= 1 or self.spec.ref.kind in ("tfds", "flores") or entry.kind == PAIR:
            return 1
        count = len(self.source_files(entry))
        return max(1, min(wanted, count // num_shards))

    def records(self, entry: Entry, shard_index: int, num_shards: int) -> Iterator:
        if entry.kind == MONO:
            for doc in corpora.documents(self.spec, entry.group, entry.split, shard_index, num_shards):
                yield doc.text
        else:
            src, tgt = entry.group.split("-")
            for pair in corpora.pair_records(self.spec, src, tgt, entry.split, shard_index, num_shards):
                yield pair.src, pair.tgt


def as_source(source, splits=None) -> CacheSource:
    """A CacheSource as given, or a CorpusSpec (or declared corpus name / SOURCE string) wrapped."""
    if isinstance(source, CacheSource):
        return source
    if isinstance(source, str):
        source = corpora.spec_for_source(source)
    if isinstance(source, CorpusSpec):
        return CorpusSource(source, tuple(splits) if splits is not None else None)
    raise ConfigError(f"a token cache source is a CacheSource, CorpusSpec or corpus name, got {type(source).__name__}")
