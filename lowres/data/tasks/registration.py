"""Registering seqio tasks: one task per language under an objective (its denoiser chosen per example),
language mixtures with temperature sampling, and translation tasks over parallel records
(`register_translation_task`, the one place corpora and the built-in corpus register translation).

Task names follow lowres.data.tasks.names (`<corpus>.<lang>.<objective>`, or `<corpus>.<lang>.<denoiser>`
for one-denoiser objectives; `<corpus>.<src>_to_<tgt>.<objective>`). Every task can also record a plan
(lowres.data.tasks.plans) that lets training sample the same text from a token cache by index.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence

import seqio
import tensorflow as tf
from tensorflow.python.autograph.core import ag_ctx  # no public switch for tf.data's autograph

from lowres.data.mixing.rates import temperature_rates
from lowres.data.tasks import objectives, plans
from lowres.data.tasks.names import task_name
from lowres.data.text import readers
from lowres.text_metrics import chrf_bleu


@dataclasses.dataclass(frozen=True)
class TextSplitFiles:
    """One language of a corpus: split name -> file pattern (one document per line) and its size."""

    lang: str
    files: Mapping[str, str]
    num_documents: Mapping[str, int]
    num_bytes: int


def output_features(vocabulary: seqio.Vocabulary) -> dict[str, seqio.Feature]:
    return {
        "inputs": seqio.Feature(vocabulary=vocabulary, add_eos=True, required=False),
        "targets": seqio.Feature(vocabulary=vocabulary, add_eos=True),
    }


def without_autograph(preprocessor):
    """`preprocessor` with its tf.data map functions traced as plain TensorFlow.

    Autograph re-parses the Python source of every map function for every task, which made graph
    construction of a 140-task mixture take minutes; these preprocessors need no conversion.
    """

    @functools.wraps(preprocessor)
    def wrapped(*args, **kwargs):
        with ag_ctx.ControlStatusCtx(status=ag_ctx.Status.DISABLED):
            return preprocessor(*args, **kwargs)

    return wrapped


# Sources up to this size keep their token ids in memory after the first pass, so that epochs over a
# small corpus (the built-in one repeats every few dozen examples) do not run SentencePiece again.
MAX_BYTES_TO_CACHE_TOKENS = 256 * 2**20


def _keep_in_memory(dataset: tf.data.Dataset) -> tf.data.Dataset:
    return dataset.cache()


def _line_to_text(line: tf.Tensor) -> dict[str, tf.Tensor]:
    return {"targets": line}


def objective_task_name(corpus: str, lang: str, objective_name: str,
                        entries: Sequence[tuple[objectives.Denoiser, float]]) -> str:  # fmt: skip
    """`<corpus>.<lang>.<denoiser>` for a one-denoiser objective, else `<corpus>.<lang>.<objective>`."""
    return task_name(corpus, lang, entries[0][0].name if len(entries) == 1 else objective_name)


def register_language_task(
    name: str,
    source: seqio.DataSource,
    raw_preprocessors: Sequence,
    vocabulary: seqio.Vocabulary,
    entries: Sequence[tuple[objectives.Denoiser, float]],
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
    cache_tokens: bool = False,
    plan: plans.MonoPlan | None = None,
) -> str:
    """Registers (replacing a same-named one) one language's task under an objective: each example's
    denoiser is chosen by the objective's rates (lowres.data.tasks.objectives.objective_preprocessor).

    `raw_preprocessors` turn the source's examples into {"targets": text}; `plan` says where the index-based
    training stream finds the same text in a token cache (lowres.data.tasks.plans).
    """
    cache = [_keep_in_memory, seqio.CacheDatasetPlaceholder()] if cache_tokens else []
    steps = [*raw_preprocessors, seqio.preprocessors.tokenize, *cache, objectives.objective_preprocessor(entries),
             seqio.preprocessors.append_eos_after_trim]
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=source,
        preprocessors=[step if isinstance(step, seqio.CacheDatasetPlaceholder) else without_autograph(step)
                       for step in steps],  # fmt: skip
        output_features=output_features(vocabulary),
        metric_fns=[],
        shuffle_buffer_size=shuffle_buffer_size,
    )
    plans.forget_plan(name)
    if plan is not None:
        plans.record_plan(dataclasses.replace(plan, task=name, denoisers=tuple(entries)))
    register_denoiser_views(name, entries)
    return name


def register_text_task(
    corpus: str,
    source: TextSplitFiles,
    vocabulary: seqio.Vocabulary,
    objective_name: str,
    entries: Sequence[tuple[objectives.Denoiser, float]],
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
    plan: plans.MonoPlan | None = None,
) -> str:
    """One language of one-document-per-line text files under an objective (see register_language_task)."""
    return register_language_task(
        objective_task_name(corpus, source.lang, objective_name, entries),
        seqio.TextLineDataSource(split_to_filepattern=dict(source.files), num_input_examples=dict(source.num_documents)),
        [seqio.map_over_dataset(_line_to_text)], vocabulary, entries, shuffle_buffer_size,
        cache_tokens=source.num_bytes <= MAX_BYTES_TO_CACHE_TOKENS, plan=plan,
    )


_VIEWS: dict[str, tuple[str, ...]] = {}  # language task -> its one-denoiser views


def register_denoiser_views(name: str, entries: Sequence[tuple[objectives.Denoiser, float]]) -> list[str]:
    """For a language task under several denoisers, also registers `<corpus>.<lang>.<denoiser>`: the same
    source under one denoiser, to inspect (`lowres data sample`) or evaluate one denoiser at a time.
    Registration builds no tf.data graph, so these cost microseconds each; training never reads them."""
    _VIEWS.pop(name, None)
    if len(entries) < 2:
        return []
    task = seqio.TaskRegistry.get(name)
    corpus, lang = name.split(".")[:2]
    views = []
    for denoiser, _ in entries:
        view = task_name(corpus, lang, denoiser.name)
        one = without_autograph(objectives.denoiser_preprocessor(denoiser))
        preprocessors = [one if getattr(step, "__name__", "").startswith("denoise_") else step
                         for step in task.preprocessors]  # fmt: skip
        seqio.TaskRegistry.remove(view)
        seqio.TaskRegistry.add(view, source=task.source, preprocessors=preprocessors,
                               output_features=task.output_features, metric_fns=[],
                               shuffle_buffer_size=task.shuffle_buffer_size)  # fmt: skip
        plans.forget_plan(view)
        plan = plans.plan_for(name)
        if plan is not None:
            plans.record_plan(dataclasses.replace(plan, task=view, denoisers=((denoiser, 1.0),)))
        views.append(view)
    _VIEWS[name] = tuple(views)
    return views



def denoiser_views(name: str) -> tuple[str, ...]:
    """The one-denoiser views register_denoiser_views registered for language task `name` (none for a
    one-denoiser task)."""
    return _VIEWS.get(name, ())


def register_language_mixture(
    name: str,
    corpus: str,
    sources: Sequence[TextSplitFiles],
    vocabulary: seqio.Vocabulary,
    objective: Sequence[tuple[objectives.Denoiser, float]],
    alpha: float = 0.3,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
    objective_name: str = "objective",
    plan_source=None,
) -> seqio.Mixture:
    """Registers one task per language (its denoiser chosen per example) and a mixture at rate size^alpha.

    With `plan_source` (a lowres.data.cache CacheSource holding the same text) each task records a plan,
    so training samples it from the token cache by index.
    """
    lang_rates = temperature_rates({s.lang: s.num_bytes for s in sources}, alpha)
    tasks_and_rates = []
    for source in sources:
        plan = (plans.MonoPlan("", plan_source, source.lang, "train", tuple(objective))
                if plan_source is not None else None)  # fmt: skip
        task = register_text_task(corpus, source, vocabulary, objective_name, objective, shuffle_buffer_size, plan)
        tasks_and_rates.append((task, lang_rates[source.lang]))
    seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, tasks_and_rates)


def register_translation_task(
    name: str,
    records: Callable[[str, int, int], Iterable[readers.ParallelPair]],
    files: Callable[[str], Sequence[str]],
    splits: Sequence[str],
    corpus: str,
    vocabulary: seqio.Vocabulary,
    translation: objectives.Translation | None = None,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
    plan: plans.PairPlan | None = None,
) -> str:
    """Registers (replacing a same-named one) a translation task over parallel records; returns its name.

    `records(split, shard_index, num_shards)` gives this host's (src, tgt) pairs of a split and
    `files(split)` the files behind it (seqio shards by file). Inputs are `<2tgt> source` as
    `translation` lays them out (default: forward), the layout `lowres translate` feeds the model;
    the task reports chrF++ and BLEU.
    """
    translation = translation or objectives.Translation()
    seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add(
        name,
        source=readers.document_source(records, splits, "parallel", corpus, files),
        preprocessors=[objectives.translation_preprocessor(translation), seqio.preprocessors.append_eos_after_trim],
        output_features=output_features(vocabulary),
        metric_fns=[chrf_bleu],
        shuffle_buffer_size=shuffle_buffer_size,
    )
    plans.forget_plan(name)
    if plan is not None and translation.direction != "both":  # "both" is read through seqio
        plans.record_plan(dataclasses.replace(plan, task=name, translation=translation))
    return name
