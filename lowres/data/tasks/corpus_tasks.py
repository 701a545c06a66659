"""SeqIO tasks and mixtures of a declared corpus (lowres.data.text.corpora.CorpusSpec).

`register_corpus(spec, vocabulary)` adds the tasks `<corpus>.<lang>.<objective>` (or `.<denoiser>` for a
one-denoiser objective) and
`<corpus>.<src>_to_<tgt>.<translation>` (lowres.data.tasks.names) and the mixtures
`<corpus>.<objective>`, `<corpus>.<translation>` and, with a translation share, `<corpus>.mixed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping


from lowres.data.mixing.rates import language_rates, mixing_rates, register_mixture
from lowres.data.cache.sources import CorpusSource
from lowres.data.tasks import objectives, plans
from lowres.data.tasks.names import mixture_name, pair_task_name
from lowres.data.tasks.registration import objective_task_name, register_language_task, register_translation_task
from lowres.data.text import corpora, readers
from lowres.data.text.corpora import CorpusSpec, CorpusStats

__all__ = ["RegisteredCorpus", "mono_source", "register_corpus"]


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


def mono_source(spec: CorpusSpec, lang: str, splits: list[str], num_examples: Mapping[str, int] | None):
    """(seqio source, preprocessors producing raw features) for one language."""
    if spec.ref.kind == "tfds":
        from lowres.data.text import tfds_sources

        source, text_key = tfds_sources.tfds_source(spec.ref.location, lang, spec.tfds_data_dir)
        return source, [_tfds_to_raw(text_key, lang, spec.name)]
    kind = "translationese" if spec.kind == "translationese" else "monolingual"
    source = readers.document_source(
        lambda split, index, count: corpora.documents(spec, lang, split, index, count),
        splits, kind, spec.name,
        shards_fn=lambda split: corpora.source_files(spec, lang, split),
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
    if isinstance(spec, str):
        spec = corpora.spec_for_source(spec)
    splits = sorted(corpora.split_map(spec))
    task_names: list[str] = []
    mixture = translation_mixture = None
    langs = pairs = ()
    rates: dict[str, float] = {}

    if spec.kind != "parallel":
        langs = tuple(corpora.languages(spec))
        stats = stats or corpora.corpus_stats(spec, "train", vocabulary if spec.mixing.size_unit == "tokens" else None)
        lang_rates = language_rates(spec, stats)
        denoisers = objectives.objective(spec.objective)
        plan_source = CorpusSource(spec) if spec.ref.kind != "tfds" else None  # TFDS is read through seqio
        tasks_and_rates = []
        for lang in langs:
            num_examples = {"train": stats.documents[lang]} if stats.exact_bytes else None
            source, raw = mono_source(spec, lang, splits, num_examples)
            plan = plans.MonoPlan("", plan_source, lang, "train", denoisers) if plan_source is not None else None
            name = register_language_task(
                objective_task_name(spec.name, lang, spec.objective, denoisers), source, [*raw, _raw_to_targets],
                vocabulary, denoisers, shuffle_buffer_size, plan=plan,
            )
            task_names.append(name)
            tasks_and_rates.append((name, lang_rates[lang]))
        mixture = mixture_name(spec.name, spec.objective)
        register_mixture(mixture, tasks_and_rates)
        rates.update(lang_rates)

    pairs = tuple(corpora.pairs(spec))
    if pairs:
        translation = spec.translation or objectives.Translation()
        corpora.pair_source(spec)  # a TFDS family holds no pairs: one clear error before registering any
        pair_sizes = {}
        tasks_and_rates = []
        pair_plan_source = CorpusSource(spec)
        for src, tgt in pairs:
            name = register_translation_task(
                pair_task_name(spec.name, src, tgt, translation.name),
                lambda split, index, count, src=src, tgt=tgt: corpora.pair_records(spec, src, tgt, split, index, count),
                lambda split, src=src: corpora.source_files(spec, src, split),
                splits, spec.name, vocabulary, translation, shuffle_buffer_size,
                plans.PairPlan("", pair_plan_source, src, tgt, "train", translation),
            )
            task_names.append(name)
            pair_sizes[f"{src}-{tgt}"] = _pair_bytes(spec, src, tgt, stats)
        pair_rates = mixing_rates(dataclasses.replace(spec.mixing, method="temperature")
                                  if spec.mixing.method == "fixed" else spec.mixing, pair_sizes)
        for (src, tgt), name in zip(pairs, task_names[-len(pairs):]):
            tasks_and_rates.append((name, pair_rates[f"{src}-{tgt}"]))
        translation_mixture = mixture_name(spec.name, translation.name)
        register_mixture(translation_mixture, tasks_and_rates)
        if spec.kind == "parallel":
            rates.update(pair_rates)

    training = mixture or translation_mixture
    if mixture and translation_mixture and spec.translation_share > 0:
        training = mixture_name(spec.name, "mixed")
        register_mixture(training, [(mixture, 1.0 - spec.translation_share),
                                    (translation_mixture, spec.translation_share)])
    return RegisteredCorpus(spec, mixture, translation_mixture, tuple(task_names), langs, pairs, rates, training)


def _pair_bytes(spec: CorpusSpec, src: str, tgt: str, stats: CorpusStats | None) -> int:
    """UTF-8 bytes of both sides of a pair's train split: from the monolingual counts when present, else streamed."""
    if stats is not None and src in stats.bytes and tgt in stats.bytes and stats.exact_bytes:
        return stats.bytes[src] + stats.bytes[tgt]
    return sum(len(pair.src.encode("utf-8")) + len(pair.tgt.encode("utf-8"))
               for pair in corpora.pair_records(spec, src, tgt, "train"))
