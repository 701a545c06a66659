"""Declarative corpora: one `CorpusSpec` registers task families and mixtures for every language.

`declare_corpus(CorpusSpec("flores200", "flores:../shared/data/flores200/dev", objective="causal_lm",
pairs="eng_Latn-*"))` names the corpus; `register_corpus(name, vocabulary)` then adds the seqio
tasks `<corpus>.<lang>.<denoiser>` and `<corpus>.<src>_to_<tgt>.<translation>` (seqio names allow no '-') and the mixtures
`<corpus>.<objective>` and `<corpus>.<translation>`. Corpora can be declared in gin files through
`declared_corpora.specs` (see gin_configs/corpora/flores.gin).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import gin

from lowres.data.text import readers
from lowres.data.text.cleaning import CleaningConfig, CleaningReport, clean_iter
from lowres.data.languages import normalize_language
from lowres.data.mixing.rates import MixingConfig, mixing_rates, register_mixture
from lowres.text_metrics import chrf_bleu
from lowres.data.text.sources import FileSource, SourceError, open_source

__all__ = [
    "CorpusSpec",
    "CorpusStats",
    "RegisteredCorpus",
    "corpus_spec",
    "corpus_stats",
    "declare_corpus",
    "declared_corpora",
    "documents",
    "language_rates",
    "languages",
    "pair_records",
    "pair_task_name",
    "pairs",
    "register_corpus",
    "spec_for_source",
    "split_map",
]

KINDS = ("monolingual", "parallel", "translationese")


@gin.configurable
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
            raise ValueError(f"CorpusSpec.name must be non-empty without '.', got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"CorpusSpec.kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.languages, str):
            object.__setattr__(self, "languages", tuple(normalize_language(c) for c in self.languages))
        elif self.languages != "all":
            object.__setattr__(self, "languages", (normalize_language(self.languages),))
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(sorted(dict(self.splits).items())))
        if self.pairs is not None and not isinstance(self.pairs, str):
            object.__setattr__(self, "pairs", tuple(_pair(p) for p in self.pairs))
        if not 0.0 <= self.translation_share <= 1.0:
            raise ValueError(f"CorpusSpec.translation_share must lie in [0, 1], got {self.translation_share}")
        if self.kind == "parallel" and self.pairs is None:
            raise ValueError(f"CorpusSpec {self.name!r}: kind='parallel' needs pairs=")


def _pair(value: str | Sequence[str]) -> tuple[str, str]:
    parts = value.split("-") if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise ValueError(f"a language pair is 'src-tgt' or (src, tgt), got {value!r}")
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
    """A declared corpus (in Python or in the parsed gin config), or None."""
    if name not in _DECLARED:
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
        kind, sep, _ = source.partition(":")
        if not sep and kind != "builtin":
            declared = sorted(_DECLARED)
            raise SourceError(
                f"unknown data source {source!r}: not a declared corpus ({declared or 'none declared'}) and not "
                "builtin, flores:DIR, text:GLOB, jsonl:GLOB, udhr:GLOB, tsv:GLOB or tfds:FAMILY"
            )
        spec = CorpusSpec(name=kind, source=source, objective=objective, mixing=mixing or MixingConfig())
    if languages:
        spec = dataclasses.replace(spec, languages=tuple(normalize_language(c) for c in languages))
    return spec


# ---------------------------------------------------------------- reading a spec


@functools.lru_cache(maxsize=64)
def _open(spec: CorpusSpec) -> FileSource | None:
    """The file source behind a spec; None for TFDS families (read through seqio.TfdsDataSource)."""
    if spec.source.startswith("tfds:"):
        return None
    single = spec.languages[0] if not isinstance(spec.languages, str) and len(spec.languages) == 1 else None
    options: dict[str, Any] = {}
    if spec.source.startswith("jsonl:"):
        options = {"text_field": spec.text_field, "lang_field": spec.lang_field, "id_field": spec.id_field,
                   "invalid_utf8": spec.invalid_utf8}
    elif spec.source.startswith("text:"):
        options = {"layout": spec.layout, "invalid_utf8": spec.invalid_utf8}
    pair = spec.pairs[0] if isinstance(spec.pairs, tuple) and len(spec.pairs) == 1 else None
    return open_source(spec.source, lang=single, pair=pair, **options)


def split_map(spec: CorpusSpec) -> dict[str, str]:
    """seqio split -> source split for a spec (see CorpusSpec.splits)."""
    if spec.splits is not None:
        return dict(spec.splits)
    source = _open(spec)
    if source is None:
        from lowres.data.text import tfds_sources

        return {split: split for split, _ in tfds_sources.family(spec.source.partition(":")[2]).splits}
    available = source.splits()
    mapping = {split: split for split in available}
    mapping.setdefault("train", available[0])
    return mapping


def languages(spec: CorpusSpec) -> list[str]:
    """The spec's monolingual languages; a requested language the source lacks raises SourceError."""
    source = _open(spec)
    if source is None:
        from lowres.data.text import tfds_sources

        available = sorted(tfds_sources.family(spec.source.partition(":")[2]).language_map())
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
    source = _open(spec)
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
            raise ValueError(f"CorpusSpec.pairs={spec.pairs!r}: use 'all', 'src-*', '*-tgt' or 'src-tgt'")
        srcs = langs if src == "*" else [normalize_language(src)]
        tgts = langs if tgt == "*" else [normalize_language(tgt)]
        wanted = [(a, b) for a in srcs for b in tgts if a != b]
    missing = sorted({lang for pair in wanted for lang in pair} - set(langs))
    if missing:
        raise SourceError(f"corpus {spec.name!r}: pairs name {missing}, which {spec.source} does not hold")
    return wanted


def documents(spec: CorpusSpec, lang: str, split: str = "train") -> Iterator[readers.Document]:
    """All of one language's (cleaned) documents of a seqio split, on one host."""
    return _documents(spec, lang, split, 0, 1)


def pair_records(spec: CorpusSpec, src: str, tgt: str, split: str = "train") -> Iterator[readers.ParallelPair]:
    """All (src, tgt) pairs of a seqio split."""
    source = _open(spec)
    if source is None:
        raise SourceError(f"corpus {spec.name!r}: TFDS families are monolingual; pairs need a parallel source")
    return source.pairs(src, tgt, split_map(spec)[split])


def _documents(spec: CorpusSpec, lang: str, split: str, shard_index: int, num_shards: int,
               report: CleaningReport | None = None, stats: readers.ReadStats | None = None) -> Iterator:
    """One language's documents of a seqio split on one host, cleaned when the spec says so."""
    if spec.source.startswith("tfds:"):
        docs = _tfds_documents(spec, lang, split, shard_index, num_shards)
    else:
        docs = _open(spec).documents(lang, split_map(spec)[split], shard_index, num_shards, stats)
    docs = (dataclasses.replace(doc, corpus=spec.name) for doc in docs)
    if spec.cleaning is None:
        return docs
    return clean_iter(docs, spec.cleaning, report if report is not None else CleaningReport())


def _tfds_documents(spec: CorpusSpec, lang: str, split: str, shard_index: int, num_shards: int):
    import seqio

    from lowres.data.text import tfds_sources

    source, key = tfds_sources.tfds_source(spec.source.partition(":")[2], lang, spec.tfds_data_dir)
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
    if spec.source.startswith("tfds:"):
        from lowres.data.text import tfds_sources

        family = spec.source.partition(":")[2]
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


def language_rates(spec: CorpusSpec, stats: CorpusStats) -> dict[str, float]:
    """Mixing rate per language under spec.mixing (sizes in bytes, or tokens when counted)."""
    sizes = {"tokens": stats.tokens, "chars": stats.chars, "bytes": stats.bytes}[spec.mixing.size_unit]
    if sizes is None:
        raise ValueError(f"corpus {spec.name!r} mixes by {spec.mixing.size_unit}, which this source does not "
                         "count" + (" without a vocabulary" if spec.mixing.size_unit == "tokens" else ""))
    empty = sorted(lang for lang, size in sizes.items() if size == 0)
    if empty:
        raise SourceError(f"corpus {spec.name!r}: no text left for {empty} (after cleaning, if on)")
    return mixing_rates(spec.mixing, sizes)


# ---------------------------------------------------------------- seqio registration


@dataclasses.dataclass(frozen=True)
class RegisteredCorpus:
    """What `register_corpus` added to seqio."""

    spec: CorpusSpec
    mixture: str | None  # monolingual mixture `<corpus>.<objective>`
    translation_mixture: str | None  # `<corpus>.<translation>`
    tasks: tuple[str, ...]
    languages: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...]
    rates: Mapping[str, float]  # language (or "src-tgt") -> rate
    training_mixture: str = ""  # what training samples: mono, translation, or `<corpus>.mixed`


def pair_task_name(corpus: str, src: str, tgt: str, objective: str) -> str:
    """`<corpus>.<src>_to_<tgt>.<objective>`: seqio task names cannot hold '-'."""
    return f"{corpus}.{src}_to_{tgt}.{objective}"


def _raw_to_targets(dataset, *unused_args, **unused_kwargs):
    import tensorflow as tf

    def to_targets(example):
        example = dict(example)
        example["targets"] = example.pop("text")
        return example

    return dataset.map(to_targets, num_parallel_calls=tf.data.AUTOTUNE)


def _tfds_to_raw(text_key: str, lang: str, corpus: str):
    def preprocessor(dataset, *unused_args, **unused_kwargs):
        import tensorflow as tf

        def to_raw(example):
            return {"text": example[text_key], "lang": tf.constant(lang), "corpus": tf.constant(corpus)}

        return dataset.map(to_raw, num_parallel_calls=tf.data.AUTOTUNE)

    return preprocessor


def _mono_source(spec: CorpusSpec, lang: str, splits: list[str], num_examples: Mapping[str, int] | None):
    """(seqio source, preprocessors producing raw features) for one language."""
    if spec.source.startswith("tfds:"):
        from lowres.data.text import tfds_sources

        source, text_key = tfds_sources.tfds_source(spec.source.partition(":")[2], lang, spec.tfds_data_dir)
        return source, [_tfds_to_raw(text_key, lang, spec.name)]
    file_source = _open(spec)
    mapping = split_map(spec)
    kind = "translationese" if spec.kind == "translationese" else "monolingual"
    source = readers.document_source(
        lambda split, index, count: _documents(spec, lang, split, index, count),
        splits, kind, spec.name,
        shards_fn=lambda split: file_source.files(lang, mapping[split]),
        num_input_examples=num_examples,
    )
    return source, []


def register_corpus(
    spec: CorpusSpec | str,
    vocabulary,
    shuffle_buffer_size: int = 1000,
    stats: CorpusStats | None = None,
) -> RegisteredCorpus:
    """Registers the spec's task families and mixtures with `vocabulary`; replaces same-named ones."""
    import seqio

    from lowres.data.tasks import objectives
    from lowres.data.tasks.registration import output_features

    if isinstance(spec, str):
        spec = spec_for_source(spec)
    features = output_features(vocabulary)
    splits = sorted(split_map(spec))
    task_names: list[str] = []
    mixture = translation_mixture = None
    langs = pairs_ = ()
    rates: dict[str, float] = {}

    if spec.kind != "parallel":
        langs = tuple(languages(spec))
        stats = stats or corpus_stats(spec, "train", vocabulary if spec.mixing.size_unit == "tokens" else None)
        lang_rates = language_rates(spec, stats)
        denoisers = objectives.objective(spec.objective)
        denoiser_total = sum(rate for _, rate in denoisers)
        tasks_and_rates = []
        for lang in langs:
            num_examples = {"train": stats.documents[lang]} if stats.exact_bytes else None
            source, raw = _mono_source(spec, lang, splits, num_examples)
            for denoiser, rate in denoisers:
                name = f"{spec.name}.{lang}.{denoiser.name}"
                seqio.TaskRegistry.remove(name)
                seqio.TaskRegistry.add(
                    name,
                    source=source,
                    preprocessors=[*raw, _raw_to_targets, seqio.preprocessors.tokenize,
                                   objectives.denoiser_preprocessor(denoiser),
                                   seqio.preprocessors.append_eos_after_trim],
                    output_features=features,
                    metric_fns=[],
                    shuffle_buffer_size=shuffle_buffer_size,
                )
                task_names.append(name)
                tasks_and_rates.append((name, lang_rates[lang] * rate / denoiser_total))
        mixture = f"{spec.name}.{spec.objective}"
        register_mixture(mixture, tasks_and_rates)
        rates.update(lang_rates)

    pairs_ = tuple(pairs(spec))
    if pairs_:
        translation = spec.translation or objectives.Translation()
        file_source = _open(spec)
        if file_source is None:
            raise SourceError(f"corpus {spec.name!r}: TFDS families are monolingual; pairs need a parallel source")
        mapping = split_map(spec)
        pair_sizes = {}
        tasks_and_rates = []
        for src, tgt in pairs_:
            name = pair_task_name(spec.name, src, tgt, translation.name)

            def records(split, index, count, src=src, tgt=tgt):
                return file_source.pairs(src, tgt, mapping[split], index, count)


            def shards(split, src=src):
                return file_source.files(src, mapping[split])

            seqio.TaskRegistry.remove(name)
            seqio.TaskRegistry.add(
                name,
                source=readers.document_source(records, splits, "parallel", spec.name, shards),
                preprocessors=[objectives.translation_preprocessor(translation),
                               seqio.preprocessors.append_eos_after_trim],
                output_features=features,
                metric_fns=[chrf_bleu],
                shuffle_buffer_size=shuffle_buffer_size,
            )
            task_names.append(name)
            pair_sizes[f"{src}-{tgt}"] = _pair_bytes(file_source, src, tgt, mapping["train"], stats)
        pair_rates = mixing_rates(dataclasses.replace(spec.mixing, method="temperature")
                                  if spec.mixing.method == "fixed" else spec.mixing, pair_sizes)
        for (src, tgt), name in zip(pairs_, task_names[-len(pairs_):]):
            tasks_and_rates.append((name, pair_rates[f"{src}-{tgt}"]))
        translation_mixture = f"{spec.name}.{translation.name}"
        register_mixture(translation_mixture, tasks_and_rates)
        if spec.kind == "parallel":
            rates.update(pair_rates)

    training = mixture or translation_mixture
    if mixture and translation_mixture and spec.translation_share > 0:
        training = f"{spec.name}.mixed"
        register_mixture(training, [(mixture, 1.0 - spec.translation_share),
                                    (translation_mixture, spec.translation_share)])
    return RegisteredCorpus(spec, mixture, translation_mixture, tuple(task_names), langs, pairs_, rates, training)


def _pair_bytes(source: FileSource, src: str, tgt: str, split: str, stats: CorpusStats | None) -> int:
    """UTF-8 bytes of both sides of a pair: from the monolingual counts when present, else streamed."""
    if stats is not None and src in stats.bytes and tgt in stats.bytes and stats.exact_bytes:
        return stats.bytes[src] + stats.bytes[tgt]
    return sum(len(pair.src.encode("utf-8")) + len(pair.tgt.encode("utf-8")) for pair in source.pairs(src, tgt, split))
