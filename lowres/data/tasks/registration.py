"""Registering seqio tasks: denoising tasks over one-document-per-line text files, language mixtures with
temperature sampling, and translation tasks over parallel records (`register_translation_task`, the one
place corpora and the built-in corpus register translation).

Task names follow lowres.data.tasks.names (`<corpus>.<lang>.<denoiser>`, `<corpus>.<src>_to_<tgt>.<objective>`);
a mixture combines each language's rate (size^alpha) with each denoiser's rate, so a UL2-style mixture is
plain seqio.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence

import seqio
import tensorflow as tf
from tensorflow.python.autograph.core import ag_ctx  # no public switch for tf.data's autograph

from lowres.data.mixing.rates import temperature_rates
from lowres.data.tasks import objectives
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


def text_preprocessors(denoiser: objectives.Denoiser, cache_tokens: bool = False) -> list:
    """A text task's preprocessors after its `targets` text: tokenize, apply `denoiser`, append EOS.

    With `cache_tokens` the token ids are cached in memory before seqio repeats the data (the steps
    before a CacheDatasetPlaceholder run once per epoch; the denoiser stays random per epoch).
    """
    cache = [_keep_in_memory, seqio.CacheDatasetPlaceholder()] if cache_tokens else []
    steps = [seqio.preprocessors.tokenize, *cache, objectives.denoiser_preprocessor(denoiser),
             seqio.preprocessors.append_eos_after_trim]
    return [step if isinstance(step, seqio.CacheDatasetPlaceholder) else without_autograph(step) for step in steps]


def _line_to_text(line: tf.Tensor) -> dict[str, tf.Tensor]:
    return {"targets": line}


def register_text_tasks(
    corpus: str,
    source: TextSplitFiles,
    vocabulary: seqio.Vocabulary,
    denoisers: Sequence[objectives.Denoiser],
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
) -> list[str]:
    """Registers one seqio Task per denoiser over `source`; replaces tasks of the same name."""
    names = []
    for denoiser in denoisers:
        name = task_name(corpus, source.lang, denoiser.name)
        seqio.TaskRegistry.remove(name)
        seqio.TaskRegistry.add(
            name,
            source=seqio.TextLineDataSource(
                split_to_filepattern=dict(source.files),
                num_input_examples=dict(source.num_documents),
            ),
            preprocessors=[
                without_autograph(seqio.map_over_dataset(_line_to_text)),
                *text_preprocessors(denoiser, cache_tokens=source.num_bytes <= MAX_BYTES_TO_CACHE_TOKENS),
            ],
            output_features=output_features(vocabulary),
            metric_fns=[],
            shuffle_buffer_size=shuffle_buffer_size,
        )
        names.append(name)
    return names


def register_language_mixture(
    name: str,
    corpus: str,
    sources: Sequence[TextSplitFiles],
    vocabulary: seqio.Vocabulary,
    objective: Sequence[tuple[objectives.Denoiser, float]],
    alpha: float = 0.3,
    shuffle_buffer_size: int = seqio.SHUFFLE_BUFFER_SIZE,
) -> seqio.Mixture:
    """Registers tasks for every (language, denoiser) and a mixture with rate p(lang) * p(denoiser)."""
    lang_rates = temperature_rates({s.lang: s.num_bytes for s in sources}, alpha)
    denoiser_total = sum(rate for _, rate in objective)
    tasks_and_rates = []
    for source in sources:
        names = register_text_tasks(corpus, source, vocabulary, [d for d, _ in objective], shuffle_buffer_size)
        for task, (_, rate) in zip(names, objective):
            tasks_and_rates.append((task, lang_rates[source.lang] * rate / denoiser_total))
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
    return name
