"""Declarative corpora: one `CorpusSpec` says where a corpus' text is and how it is read, cleaned and mixed.

`declare_corpus(CorpusSpec("flores200", "flores:../shared/data/flores200/dev", objective="causal_lm",
pairs="eng_Latn-*"))` names the corpus; this module reads it (languages, pairs, documents, sizes) and
lowres.data.tasks.corpus_tasks.register_corpus turns it into seqio tasks and mixtures. Corpora can be
declared in gin files through `declared_corpora.specs` (see gin_configs/corpora/flores.gin, which
imports this module for the `CorpusSpec` and `declared_corpora` configurables).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gin

from lowres.data.config import MixingConfig
from lowres.data.languages import normalize_language
from lowres.data.text import readers
from lowres.data.text.cleaning import CleaningConfig, CleaningReport, clean_iter
from lowres.data.text.sources import CORPUS_KINDS, FileSource, SourceError, SourceRef, open_source
from lowres.config_fields import any_value, between, one_of, validated
from lowres.errors import ConfigError

__all__ = [
    "CorpusSpec",
    "CorpusStats",
    "corpus_spec",
    "corpus_stats",
    "declare_corpus",
    "declared_corpora",
    "documents",
    "file_source",
    "languages",
    "pair_records",
    "pair_source",
    "pairs",
    "source_files",
    "spec_for_source",
    "split_map",
]

KINDS = ("monolingual", "parallel", "translationese")


@gin.configurable
@validated(
    name=any_value("the corpus name (no '.')"), source=any_value("a SOURCE string"), kind=one_of(*KINDS),
    objective=any_value("a named objective"), translation_share=between(0.0, 1.0), text_field=any_value("a field"),
    lang_field=any_value("a field"), id_field=any_value("a field"), layout=one_of("lines", "paragraphs"),
    invalid_utf8=one_of("replace", "skip"), tfds_data_dir=any_value("a directory"),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    """A corpus in one declaration.

    source: builtin | flores:DIR | text:GLOB | jsonl:GLOB | udhr:GLOB | tsv:GLOB | tfds:FAMILY
      (globs may hold `{lang}` and `{split}`).
    languages: "all" or a list of codes in any spelling.
    kind: monolingual (denoiser tasks), translationese (monolingual + provenance features) or
      parallel (translation tasks only).
    objective: named objective (lowres.data.tasks.objectives.OBJECTIVES) for the monolingual tasks.
    splits: seqio split -> source split; None takes the source's splits, with `train` standing for
      the first one when the source has no train split (e.g. FLORES dev).
    pairs: parallel pairs to register: None, "all", "eng_Latn-*", "*-pan_Guru", "eng-pan", or a list
      of "src-tgt" strings / (src, tgt) tuples. All pairs of 204 languages would be 41,412 tasks.
    translation: objectives.Translation for the pair tasks (default: forward).
    cleaning: CleaningConfig applied while streaming (None: off); `describe` reports its drops.
    mixing: how the monolingual languages (and the pairs) are weighted.
    """

    name: str
    source: str
    languages: str | Sequence[str] = "all"
    kind: str = "monolingual"
    objective: str = "r_and_s"
    splits: Mapping[str, str] | None = None
    pairs: str | Sequence[str | Sequence[str]] | None = None
    translation: Any = None
    cleaning: CleaningConfig | None = None
    mixing: MixingConfig = MixingConfig()
    translation_share: float = 0.0  # with pairs: share of the translation tasks in `<corpus>.mixed`
    text_field: str = "text"
    lang_field: str | None = "lang"
    id_field: str | None = "id"
    layout: str = "lines"
    invalid_utf8: str = "replace"  # or "skip": lines with invalid UTF-8 (counted either way)
    tfds_data_dir: str | None = None

    def __post_init__(self):
        if not self.name or "." in self.name:
            raise ConfigError(f"CorpusSpec.name must be non-empty without '.', got {self.name!r}")
        SourceRef.parse(self.source, CORPUS_KINDS)  # a SOURCE string it can read, or one clear error
        if not isinstance(self.languages, str):
            object.__setattr__(self, "languages", tuple(normalize_language(c) for c in self.languages))
        elif self.languages != "all":
            object.__setattr__(self, "languages", (normalize_language(self.languages),))
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(sorted(dict(self.splits).items())))
        if self.pairs is not None and not isinstance(self.pairs, str):
            object.__setattr__(self, "pairs", tuple(_pair(p) for p in self.pairs))
        if self.kind == "parallel" and self.pairs is None:
            raise ConfigError(f"CorpusSpec {self.name!r}: kind='parallel' needs pairs=")

    @property
    def ref(self) -> SourceRef:
        """`source`, parsed."""
        return SourceRef.parse(self.source, CORPUS_KINDS)


def _pair(value: str | Sequence[str]) -> tuple[str, str]:
    parts = value.split("-") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise ConfigError(f"a language pair is 'src-tgt' or (src, tgt), got {value!r}")
    return normalize_language(parts[0]), normalize_language(parts[1])


# ---------------------------------------------------------------- declarations

_DECLARED: dict[str, CorpusSpec] = {}


def declare_corpus(spec: CorpusSpec) -> CorpusSpec:
    """Names a corpus so sources, `lowres data describe` and DataConfig.source can refer to it."""
    _DECLARED[spec.name] = spec
    return spec


@gin.configurable
def declared_corpora(specs: Sequence[CorpusSpec] = ()) -> tuple[CorpusSpec, ...]:
    """The corpora declared in gin (`declared_corpora.specs = [@flores/CorpusSpec()]`), now declared."""
    for spec in specs:
        declare_corpus(spec)
    return tuple(specs)


def corpus_spec(name: str) -> CorpusSpec | None:
    """A declared corpus (in Python or in the parsed gin config), or None. The gin config is read on
    every lookup, so a newly parsed config's declaration replaces an earlier one of the same name."""
    declared_corpora()
    return _DECLARED.get(name)


def spec_for_source(
    source: str,
    languages: Sequence[str] | None = None,
    objective: str = "r_and_s",
    mixing: MixingConfig | None = None,
) -> CorpusSpec:
    """The declared corpus named `source`, else an ad-hoc spec over a SOURCE string (flores:DIR, ...).

    `languages`, when given, narrows the corpus to those languages.
    """
    spec = corpus_spec(source)
    if spec is None:
        declared = ", ".join(sorted(_DECLARED)) or "none declared"
        ref = SourceRef.parse(source, CORPUS_KINDS, alternatives=f"the name of a declared corpus ({declared})")
        spec = CorpusSpec(name=ref.kind, source=str(ref), objective=objective, mixing=mixing or MixingConfig())
    if languages:
        spec = dataclasses.replace(spec, languages=tuple(normalize_language(c) for c in languages))
    return spec


# ---------------------------------------------------------------- reading a spec


@functools.lru_cache(maxsize=64)
def file_source(spec: CorpusSpec) -> FileSource | None:
    """The file source behind a spec; None for TFDS families (read through seqio.TfdsDataSource)."""
    ref = spec.ref
    if ref.kind == "tfds":
        return None
    single = spec.languages[0] if not isinstance(spec.languages, str) and len(spec.languages) == 1 else None
    options: dict[str, Any] = {}
    if ref.kind == "jsonl":
        options = {"text_field": spec.text_field, "lang_field": spec.lang_field, "id_field": spec.id_field,
                   "invalid_utf8": spec.invalid_utf8}
    elif ref.kind == "text":
        options = {"layout": spec.layout, "invalid_utf8": spec.invalid_utf8}
    pair = spec.pairs[0] if isinstance(spec.pairs, tuple) and len(spec.pairs) == 1 else None
    return open_source(ref, lang=single, pair=pair, **options)


def _tfds_family(spec: CorpusSpec):
    from lowres.data.text import tfds_sources

    return tfds_sources.family(spec.ref.location)


def split_map(spec: CorpusSpec) -> dict[str, str]:
    """seqio split -> source split for a spec (see CorpusSpec.splits)."""
    if spec.splits is not None:
        return dict(spec.splits)
    source = file_source(spec)
    if source is None:
        return {split: split for split, _ in _tfds_family(spec).splits}
    available = source.splits()
    mapping = {split: split for split in available}
    mapping.setdefault("train", available[0])
    return mapping


def languages(spec: CorpusSpec) -> list[str]:
    """The spec's monolingual languages; a requested language the source lacks raises SourceError."""
    source = file_source(spec)
    if source is None:
        available = sorted(_tfds_family(spec).language_map())
    else:
        available = source.languages(split_map(spec)["train"])
    if spec.languages == "all":
        return available
    missing = [lang for lang in spec.languages if lang not in available]
    if missing:
        raise SourceError(f"corpus {spec.name!r} ({spec.source}) has no {missing}; it has {len(available)} "
                          f"languages, e.g. {available[:8]}")
    return list(spec.languages)


def pairs(spec: CorpusSpec) -> list[tuple[str, str]]:
    """The (src, tgt) pairs the spec asks for, expanded against its languages."""
    if spec.pairs is None:
        return []
    source = file_source(spec)
    fixed = source.pair_languages(split_map(spec)["train"]) if source is not None else None
    if fixed is not None and isinstance(spec.pairs, tuple):
        return list(spec.pairs)
    langs = sorted(set(fixed[0]) if fixed else set(languages(dataclasses.replace(spec, languages="all"))))
    if isinstance(spec.pairs, tuple):
        wanted = list(spec.pairs)
    elif spec.pairs == "all":
        wanted = [(a, b) for a in langs for b in langs if a != b]
    else:
        src, sep, tgt = spec.pairs.partition("-")
        if not sep:
            raise ConfigError(f"CorpusSpec.pairs={spec.pairs!r}: use 'all', 'src-*', '*-tgt' or 'src-tgt'")
        srcs = langs if src == "*" else [normalize_language(src)]
        tgts = langs if tgt == "*" else [normalize_language(tgt)]
        wanted = [(a, b) for a in srcs for b in tgts if a != b]
    missing = sorted({lang for pair in wanted for lang in pair} - set(langs))
    if missing:
        raise SourceError(f"corpus {spec.name!r}: pairs name {missing}, which {spec.source} does not hold")
    return wanted


def documents(
    spec: CorpusSpec, lang: str, split: str = "train", shard_index: int = 0, num_shards: int = 1
) -> Iterator[readers.Document]:
    """One language's (cleaned) documents of a seqio split: all of them, or this host's shard."""
    return _documents(spec, lang, split, shard_index, num_shards)


def pair_records(
    spec: CorpusSpec, src: str, tgt: str, split: str = "train", shard_index: int = 0, num_shards: int = 1
) -> Iterator[readers.ParallelPair]:
    """The (src, tgt) pairs of a seqio split: all of them, or this host's shard."""
    return pair_source(spec).pairs(src, tgt, split_map(spec)[split], shard_index, num_shards)


def source_files(spec: CorpusSpec, lang: str, split: str) -> list[str]:
    """The files behind one language's seqio split (what seqio shards across hosts)."""
    source = file_source(spec)
    return source.files(lang, split_map(spec)[split]) if source is not None else []


def pair_source(spec: CorpusSpec) -> FileSource:
    """The file source that holds the spec's pairs; a TFDS family (monolingual) raises SourceError."""
    source = file_source(spec)
    if source is None:
        raise SourceError(f"corpus {spec.name!r}: TFDS families are monolingual; pairs need a parallel source")
    return source


def _documents(spec: CorpusSpec, lang: str, split: str, shard_index: int, num_shards: int,
               report: CleaningReport | None = None, stats: readers.ReadStats | None = None) -> Iterator:
    """One language's documents of a seqio split on one host, cleaned when the spec says so."""
    if spec.ref.kind == "tfds":
        docs = _tfds_documents(spec, lang, split, shard_index, num_shards)
    else:
        docs = file_source(spec).documents(lang, split_map(spec)[split], shard_index, num_shards, stats)
    docs = (dataclasses.replace(doc, corpus=spec.name) for doc in docs)
    if spec.cleaning is None:
        return docs
    return clean_iter(docs, spec.cleaning, report if report is not None else CleaningReport())


def _tfds_documents(spec: CorpusSpec, lang: str, split: str, shard_index: int, num_shards: int):
    import seqio

    from lowres.data.text import tfds_sources

    source, key = tfds_sources.tfds_source(spec.ref.location, lang, spec.tfds_data_dir)
    shard = seqio.ShardInfo(shard_index, num_shards) if num_shards > 1 else None
    for index, example in enumerate(source.get_dataset(split, shuffle=False, shard_info=shard).as_numpy_iterator()):
        text = example[key].decode("utf-8", errors="replace").strip()
        if text:
            yield readers.Document(text, lang, spec.name, f"{split}:{index}")


# ---------------------------------------------------------------- sizes


@dataclasses.dataclass
class CorpusStats:
    """Per-language documents, UTF-8 bytes and (with a vocabulary) tokens of one split, after cleaning."""

    documents: dict[str, int]
    bytes: dict[str, int]
    tokens: dict[str, int] | None
    cleaning: dict[str, CleaningReport]
    read: readers.ReadStats
    exact_bytes: bool = True  # False for TFDS (serialized record size from the dataset info)
    chars: dict[str, int] | None = None  # Unicode code points (UniMax budgets are in characters)


def corpus_stats(spec: CorpusSpec, split: str = "train", vocabulary=None, progress: bool = False) -> CorpusStats:
    """Counts every language of `spec` by streaming its documents once (TFDS: from the dataset info)."""
    langs = languages(spec)
    if spec.ref.kind == "tfds":
        from lowres.data.text import tfds_sources

        family = spec.ref.location
        info = {lang: tfds_sources.tfds_split_info(family, lang, split, spec.tfds_data_dir) for lang in langs}
        return CorpusStats({k: v[0] for k, v in info.items()}, {k: v[1] for k, v in info.items()}, None, {},
                           readers.ReadStats(), exact_bytes=False)
    key = (spec, split, _vocab_key(vocabulary))
    if key not in _STATS_CACHE:
        _STATS_CACHE[key] = _count(spec, split, langs, vocabulary, progress)
    return _STATS_CACHE[key]


_STATS_CACHE: dict[tuple, CorpusStats] = {}


def _vocab_key(vocabulary) -> str | None:
    if vocabulary is None:
        return None
    return f"{type(vocabulary).__name__}:{getattr(vocabulary, 'sentencepiece_model_file', '')}:{vocabulary.vocab_size}"


def _count(spec: CorpusSpec, split: str, langs: list[str], vocabulary, progress: bool) -> CorpusStats:
    from tqdm import tqdm

    documents, sizes, chars, tokens, reports = {}, {}, {}, ({} if vocabulary is not None else None), {}
    read = readers.ReadStats()
    for lang in tqdm(langs, desc=f"counting {spec.name}", unit="lang", disable=not progress):
        reports[lang] = CleaningReport()
        n_docs = n_bytes = n_chars = n_tokens = 0
        for doc in _documents(spec, lang, split, 0, 1, reports[lang], read):
            n_docs += 1
            n_bytes += len(doc.text.encode("utf-8"))
            n_chars += len(doc.text)
            if vocabulary is not None:
                n_tokens += len(vocabulary.encode(doc.text))
        documents[lang], sizes[lang], chars[lang] = n_docs, n_bytes, n_chars
        if tokens is not None:
            tokens[lang] = n_tokens
    return CorpusStats(documents, sizes, tokens, reports if spec.cleaning is not None else {}, read, True, chars)
