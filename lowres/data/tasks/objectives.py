"""Pretraining objectives as seqio preprocessors: named objectives, denoising tasks, translation.

The denoisers themselves (span corruption as T5, prefix LM, causal LM, UL2 mode tokens) are
implemented once, per example in NumPy, in lowres.data.tasks.denoisers; the seqio preprocessor here
cuts the token stream into raw windows (TensorFlow) and calls `denoisers.apply` on each through
`tf.numpy_function`, with a per-example seed from seqio. The denoiser descriptions and length
helpers are defined there and re-exported here.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import gin
import numpy as np
import seqio
import tensorflow as tf

from lowres.data.tasks import denoisers
from lowres.data.tasks.denoisers import (  # noqa: F401  (re-exported: the public names of this module)
    SPAN_LENGTH_DISTRIBUTIONS,
    CausalLM,
    Denoiser,
    PrefixLM,
    SpanCorruption,
    _fmt,
    _mode_suffix,
    _num_noise,
    _num_spans,
    check_targets_length,
    normal_segmentation,
    random_prefix_split,
    random_segmentation,
    random_spans_noise_mask,
    random_spans_noise_masks,
    span_corruption_lengths,
)
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
from lowres.config_fields import any_value, one_of, validated
from lowres.errors import ConfigError, DataError


# ---------------------------------------------------------------------------------------------
# Translation description (the denoiser descriptions are in lowres.data.tasks.denoisers)


TRANSLATION_DIRECTIONS = ("forward", "backward", "both")


@gin.configurable
@validated(direction=one_of(*TRANSLATION_DIRECTIONS), mode_token=any_value("a mode token, or None"))
@dataclasses.dataclass(frozen=True)
class Translation:
    """Parallel data as `<2tgt> source` -> `target`; "backward" swaps the sides, "both" yields each."""

    direction: str = "forward"
    mode_token: str | None = None

    @property
    def name(self) -> str:
        base = {"forward": "translate", "backward": "translate_backward", "both": "translate_both"}[self.direction]
        return base + _mode_suffix(self.mode_token)

# Named objectives: a list of (denoiser, rate). UL2's seven denoisers share R 33% / X 33% / S 34%
# [unconfirmed: the paper gives roughly equal shares]; UL2R (continued training) gives S half.
_R, _X, _S = "[NLU]", "[NLG]", "[S2S]"
OBJECTIVES: Mapping[str, tuple[tuple[Denoiser, float], ...]] = {
    "ul2": (
        (SpanCorruption(3.0, 0.15, _R), 0.165),
        (SpanCorruption(8.0, 0.15, _R), 0.165),
        (SpanCorruption(3.0, 0.5, _X), 0.0825),
        (SpanCorruption(8.0, 0.5, _X), 0.0825),
        (SpanCorruption(64.0, 0.15, _X), 0.0825),
        (SpanCorruption(64.0, 0.5, _X), 0.0825),
        (PrefixLM(0.25, _S), 0.34),
    ),
    "ul2r": (
        (PrefixLM(0.25, _S), 0.5),
        (SpanCorruption(3.0, 0.15, _R), 0.5 / 3),
        (SpanCorruption(32.0, 0.15, _X), 0.5 / 3),
        (SpanCorruption(3.0, 0.5, _X), 0.5 / 3),
    ),
    # UL2's R-denoiser alone, and with the S-denoiser so the decoder also learns to continue text
    # (which bits-per-byte evaluation needs): the quickstart's objective.
    "r_denoiser": ((SpanCorruption(3.0, 0.15, _R), 1.0),),
    "r_and_s": ((SpanCorruption(3.0, 0.15, _R), 0.5), (PrefixLM(0.5, _S), 0.5)),
    "t5_span_corruption": ((SpanCorruption(3.0, 0.15, None), 1.0),),
    "prefix_lm": ((PrefixLM(0.5, None), 1.0),),
    "causal_lm": ((CausalLM(None), 1.0),),
}


ObjectiveEntries = tuple[tuple[Denoiser, float], ...]


@gin.configurable
def custom_objective(entries: Sequence[tuple[Denoiser, float]] = ()) -> ObjectiveEntries:
    """The (denoiser, rate) list bound in gin, used by `DataConfig.objective = "custom"`."""
    if not entries:
        raise ConfigError(
            'DataConfig.objective = "custom" needs a gin binding like '
            "custom_objective.entries = [(@r/SpanCorruption(), 0.5), (@s/PrefixLM(), 0.5)] "
            "(see gin_configs/objectives/custom.gin)"
        )
    return tuple((denoiser, float(rate)) for denoiser, rate in entries)


@gin.configurable
def objective(name: str, mode_tokens: bool = True) -> ObjectiveEntries:
    """The (denoiser, rate) list of a named objective ("custom": the gin-bound `custom_objective`).

    `mode_tokens=False` (gin: `objective.mode_tokens = False`) drops every denoiser's mode token.
    """
    if name == "custom":
        entries = custom_objective()
    elif name in OBJECTIVES:
        entries = OBJECTIVES[name]
    else:
        raise ConfigError(f"unknown objective {name!r}; choose one of {sorted([*OBJECTIVES, 'custom'])}")
    if not mode_tokens:
        entries = tuple((dataclasses.replace(d, mode_token=None), rate) for d, rate in entries)
    return _validated(name, entries)


def _validated(name: str, entries: ObjectiveEntries) -> ObjectiveEntries:
    """Checks denoiser types, positive rates and unique task names (task names come from denoiser names)."""
    for denoiser, rate in entries:
        if not isinstance(denoiser, (SpanCorruption, PrefixLM, CausalLM)):
            raise ConfigError(f"objective {name!r}: {denoiser!r} is not a denoiser (SpanCorruption, PrefixLM, CausalLM)")
        if not rate > 0:
            raise ConfigError(f"objective {name!r}: rate {rate} of {denoiser.name} must be positive")
    names = [d.name for d, _ in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(
            f"objective {name!r}: denoisers {duplicates} appear twice (with mode tokens off, two denoisers "
            "that differ only in their mode token coincide); merge them into one entry"
        )
    return tuple(entries)


# ---------------------------------------------------------------------------------------------
# seqio preprocessors


def plain_tf(fn):
    """Marks a tf.data map function as plain TensorFlow: tracing skips autograph's source rewrite.

    Autograph re-parses each closure for every task, which dominated graph construction (about
    half a CPU-second per task); these functions have no tensor-dependent Python control flow.
    """
    return tf.autograph.experimental.do_not_convert(fn)


def _unbatch(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Rows of batched (ragged) features as plain 1-D tensors, as seqio expects."""

    @plain_tf
    def as_tensors(example):
        return {k: tf.identity(v) for k, v in example.items()}

    return dataset.unbatch().map(as_tensors, num_parallel_calls=tf.data.AUTOTUNE)


def split_into_chunks(dataset: tf.data.Dataset, chunk_length: int, feature: str = "targets") -> tf.data.Dataset:
    """Concatenates the token stream of `feature` across documents and cuts it into fixed chunks.

    Works a document at a time (a scan carries the leftover tokens; an end marker flushes the last,
    shorter chunk), so no per-token tf.data element is ever created. Other features are dropped.
    """
    dtype = dataset.element_spec[feature].dtype

    @plain_tf
    def with_flag(example):
        return example[feature], False

    end = tf.data.Dataset.from_tensors((tf.zeros([0], dtype), True))

    step = _chunk_step(chunk_length)

    chunks = dataset.map(with_flag, num_parallel_calls=tf.data.AUTOTUNE).concatenate(end)
    chunks = chunks.scan(tf.zeros([0], dtype), step)
    return _unbatch(chunks.map(plain_tf(lambda rows: {feature: rows})))


@functools.lru_cache(maxsize=None)
def _chunk_step(chunk_length: int):
    """split_into_chunks' scan step, traced once per chunk length and shared by every task."""

    @functools.partial(tf.function, autograph=False)
    def step(buffer, item):
        document, last = item
        buffer = tf.concat([buffer, document], axis=0)
        num_full = tf.size(buffer) // chunk_length
        used = num_full * chunk_length
        leftover = tf.size(buffer) - used
        flush = tf.logical_and(last, leftover > 1)  # a 1-token chunk cannot be split into inputs/targets
        row_lengths = tf.concat(
            [tf.fill([num_full], chunk_length), tf.reshape(leftover, [1])[: tf.cast(flush, tf.int32)]], axis=0
        )
        emitted = tf.reduce_sum(row_lengths)
        chunks = tf.RaggedTensor.from_row_lengths(buffer[:emitted], row_lengths)
        return buffer[used:], chunks

    return step


def denoise(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    denoiser: Denoiser,
) -> tf.data.Dataset:
    """Turns tokenized text in `targets` into (inputs, targets) for `denoiser`; EOS is added later.

    The stream is cut into windows of `denoisers.raw_length` tokens (the last may be shorter), each
    denoised by `denoisers.apply`.
    """
    vocabulary = output_features["targets"].vocabulary
    mode_id = vocab_lib.reserved_id(vocabulary, denoiser.mode_token) if denoiser.mode_token else None
    chunk_length = denoisers.raw_length(denoiser, sequence_length["inputs"], sequence_length["targets"])
    check_sentinels(denoiser, sequence_length["inputs"], sequence_length["targets"], vocabulary)
    dataset = split_into_chunks(dataset, chunk_length)
    return apply_denoiser(dataset, denoiser, mode_id, vocabulary.vocab_size)


# tf.data hands the NumPy denoiser BATCH_SIZE windows per call: one tf.numpy_function (and one
# round trip through the Python interpreter) per example cost more than the denoising itself.
BATCH_SIZE = 128


def apply_denoiser(
    dataset: tf.data.Dataset, denoiser: Denoiser, mode_id: int | None, vocab_size: int, denoise_batch=None,
) -> tf.data.Dataset:
    """Raw windows in `targets` -> {"inputs", "targets"}: `denoisers.apply` on each window.

    Windows go in batches of BATCH_SIZE through one tf.numpy_function; window k of a batch whose
    seqio seed is `seed` (`map_over_dataset(num_seeds=1)`, reproducible under
    `seqio.utils.map_seed_manager`) uses the generator `example_rng(seed, k)`.
    """
    denoise_batch = denoise_batch or _shared_denoiser(denoiser, mode_id, vocab_size)
    dtype = dataset.element_spec["targets"].dtype

    @seqio.map_over_dataset(num_seeds=1)
    @plain_tf
    def apply(batch, seed):
        windows = batch["targets"]
        if not isinstance(windows, tf.RaggedTensor):  # ragged_batch of windows with a static length
            windows = tf.RaggedTensor.from_tensor(windows)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        out = denoise_batch(tf.cast(windows.values, tf.int32), windows.row_lengths(), seed)
        return {key: tf.cast(value, dtype) for key, value in out.items()}

    return _unbatch(apply(dataset.ragged_batch(BATCH_SIZE)))


def example_rng(seed, index: int) -> np.random.Generator:
    """The NumPy generator of window `index` of a batch with seqio seed `seed` (a pair of int64)."""
    return np.random.default_rng([*np.asarray(seed, np.int64).reshape(-1).view(np.uint64).tolist(), index])


@functools.lru_cache(maxsize=None)
def _shared_denoiser(denoiser: Denoiser, mode_id: int | None, vocab_size: int):
    """`denoisers.apply` on a batch of windows as a tf.function: traced once, shared by every language's task.

    Takes the windows' concatenated tokens, their lengths and the batch's seed; returns ragged
    inputs and targets. Building the map function per task took about a CPU-second each.
    """

    def one(window: np.ndarray, rng: np.random.Generator):
        return denoisers.apply(denoiser, window, rng, mode_id=mode_id, vocab_size=vocab_size)

    return _batched(one, f"denoise_{denoiser.name}")


@functools.lru_cache(maxsize=None)
def _shared_mixture(entries: ObjectiveEntries, mode_ids: tuple[int | None, ...], raw_lengths: tuple[int, ...],
                    vocab_size: int):  # fmt: skip
    """Like `_shared_denoiser` for a mixture of denoisers: each window's generator first draws its
    denoiser by the entries' rates, then that denoiser takes the window's first raw_length tokens."""
    cumulative = np.cumsum([rate for _, rate in entries])
    cumulative = cumulative / cumulative[-1]

    def one(window: np.ndarray, rng: np.random.Generator):
        chosen = min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(entries) - 1)
        return denoisers.apply(entries[chosen][0], window[: raw_lengths[chosen]], rng, mode_id=mode_ids[chosen],
                               vocab_size=vocab_size)  # fmt: skip

    return _batched(one, "denoise_mixture")


def _batched(one, name: str):
    """A tf.function applying `one(window, rng)` to every window of a ragged batch (rng: example_rng)."""

    def numpy_apply(tokens: np.ndarray, lengths: np.ndarray, seed: np.ndarray):
        inputs, targets = [], []
        ends = np.cumsum(lengths).tolist()
        for index, (start, end) in enumerate(zip([0, *ends[:-1]], ends)):
            example = one(tokens[start:end], example_rng(seed, index))
            inputs.append(example[0])
            targets.append(example[1])
        return (_concatenate(inputs), np.array([len(x) for x in inputs], np.int64),
                _concatenate(targets), np.array([len(x) for x in targets], np.int64))

    @functools.partial(
        tf.function, autograph=False,
        input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int64),
                         tf.TensorSpec([2], tf.int64)],
    )  # fmt: skip
    def denoise_batch(tokens, lengths, seed):
        inputs, input_lengths, targets, target_lengths = tf.numpy_function(
            numpy_apply, [tokens, lengths, seed], [tf.int32, tf.int64, tf.int32, tf.int64], stateful=False, name=name,
        )
        for tensor in (inputs, input_lengths, targets, target_lengths):
            tensor.set_shape([None])
        return {
            "inputs": tf.RaggedTensor.from_row_lengths(inputs, input_lengths, validate=False),
            "targets": tf.RaggedTensor.from_row_lengths(targets, target_lengths, validate=False),
        }

    return denoise_batch


def _concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros([0], np.int32)


_shared_corrupt_spans = _shared_denoiser  # the name tests/test_tasks.py checks the tracing of


def denoiser_preprocessor(denoiser: Denoiser):
    """A seqio preprocessor applying `denoiser` (seqio passes sequence_length and output_features)."""
    fn = functools.partial(denoise, denoiser=denoiser)
    fn.__name__ = f"denoise_{denoiser.name}"  # type: ignore[attr-defined]
    return fn


def denoise_mixture(
    dataset: tf.data.Dataset,
    sequence_length: Mapping[str, int],
    output_features: Mapping[str, seqio.Feature],
    *,
    entries: ObjectiveEntries,
) -> tf.data.Dataset:
    """Tokenized text in `targets` -> (inputs, targets), each example's denoiser drawn by `entries`' rates.

    The stream is cut into windows of the longest raw length any denoiser needs; a window denoised by
    one that needs fewer tokens uses its beginning. (Training reads the token cache instead, where each
    denoiser's windows have its own length: lowres.data.streams.components.)
    """
    vocabulary = output_features["targets"].vocabulary
    mode_ids = tuple(vocab_lib.reserved_id(vocabulary, d.mode_token) if d.mode_token else None for d, _ in entries)
    raws = tuple(denoisers.raw_length(d, sequence_length["inputs"], sequence_length["targets"]) for d, _ in entries)
    for denoiser, _ in entries:
        check_sentinels(denoiser, sequence_length["inputs"], sequence_length["targets"], vocabulary)
    dataset = split_into_chunks(dataset, max(raws))
    batch = _shared_mixture(tuple(entries), mode_ids, raws, vocabulary.vocab_size)
    return apply_denoiser(dataset, entries[0][0], mode_ids[0], vocabulary.vocab_size, denoise_batch=batch)


def objective_preprocessor(entries: Sequence[tuple[Denoiser, float]]):
    """A seqio preprocessor for an objective: its one denoiser, or a per-example mixture of several."""
    entries = tuple(entries)
    if len(entries) == 1:
        return denoiser_preprocessor(entries[0][0])
    fn = functools.partial(denoise_mixture, entries=entries)
    fn.__name__ = "denoise_" + "+".join(d.name for d, _ in entries)  # type: ignore[attr-defined]
    return fn


def check_sentinels(denoiser: Denoiser, inputs_length: int, targets_length: int, vocabulary) -> None:
    """A clear error when span corruption at these lengths needs more sentinels than the vocabulary has
    (their ids would otherwise run into ordinary pieces or reserved tokens)."""
    if not isinstance(denoiser, SpanCorruption):
        return
    raw = denoisers.raw_length(denoiser, inputs_length, targets_length)
    noise = _num_noise(raw, denoiser.noise_density)
    spans = _num_spans(raw, noise, denoiser.mean_span_length, denoiser.num_spans)
    # A byte vocabulary's extra ids hold its reserved tokens too: its sentinels are `num_sentinels`.
    available = getattr(vocabulary, "num_sentinels", None)
    if available is None:
        available = getattr(vocabulary, "extra_ids", None)
    if available is not None and spans > available:
        raise ConfigError(
            f"{denoiser.name} at DataConfig.inputs_length={inputs_length} makes up to {spans} noise spans, but the "
            f"vocabulary has {available} sentinels; raise VocabularyConfig.num_sentinels to at least {spans} "
            "(a new vocabulary) or shorten inputs_length"
        )


# ---------------------------------------------------------------------------------------------
# Translation


def language_tag_table(vocabulary: seqio.Vocabulary) -> tf.lookup.StaticHashTable:
    """Language code (e.g. `pan_Guru`) -> id of its reserved `<2pan_Guru>` tag; -1 for unknown codes."""
    codes, ids = [], []
    if isinstance(vocabulary, ReservedByteVocabulary):
        reserved = vocabulary.reserved_ids.items()
    else:
        processor = vocabulary.tokenizer
        reserved = ((processor.id_to_piece(i), i) for i in range(processor.get_piece_size()) if processor.is_control(i))
    for piece, piece_id in reserved:
        if piece.startswith("<2") and piece.endswith(">"):
            codes.append(piece[2:-1])
            ids.append(piece_id)
    if not codes:
        raise DataError(
            "the vocabulary reserves no language tags (<2xxx_Scrp>); train it with the languages of the parallel data"
        )
    initializer = tf.lookup.KeyValueTensorInitializer(
        tf.constant(codes, tf.string), tf.constant(ids, tf.int32)
    )
    return tf.lookup.StaticHashTable(initializer, default_value=-1)


def translate(
    dataset: tf.data.Dataset,
    output_features: Mapping[str, seqio.Feature],
    sequence_length: Mapping[str, int] | None = None,
    *,
    translation: Translation,
) -> tf.data.Dataset:
    """Raw parallel examples -> {"inputs": [mode] <2tgt> source tokens, "targets": target tokens}."""
    del sequence_length  # append_eos_after_trim trims afterwards; the tag stays first.
    vocabulary = output_features["targets"].vocabulary
    mode_id = vocab_lib.reserved_id(vocabulary, translation.mode_token) if translation.mode_token else None
    table = language_tag_table(vocabulary)

    @plain_tf
    def one_way(text, target_text, target_lang):
        tag = table.lookup(target_lang)
        check = tf.debugging.Assert(
            tag >= 0,
            ["translation: no reserved <2lang> tag in the vocabulary for target language", target_lang,
             "(retrain the vocabulary with this language, or drop its pairs)"],
        )
        with tf.control_dependencies([check]):
            tag = tf.identity(tag)
        source_tokens = tf.cast(vocabulary.encode_tf(text), tf.int32)
        prefix = [tf.reshape(tag, [1])] if mode_id is None else [tf.constant([mode_id], tf.int32), tf.reshape(tag, [1])]
        inputs = tf.concat([*prefix, source_tokens], axis=0)
        return {"inputs": inputs, "targets": tf.cast(vocabulary.encode_tf(target_text), tf.int32)}

    @plain_tf
    def forward(ex):
        return one_way(ex["src_text"], ex["tgt_text"], ex["tgt_lang"])

    @plain_tf
    def backward(ex):
        return one_way(ex["tgt_text"], ex["src_text"], ex["src_lang"])

    if translation.direction == "forward":
        return dataset.map(forward, num_parallel_calls=tf.data.AUTOTUNE)
    if translation.direction == "backward":
        return dataset.map(backward, num_parallel_calls=tf.data.AUTOTUNE)

    @plain_tf
    def both(ex):
        return tf.data.Dataset.from_tensors(forward(ex)).concatenate(tf.data.Dataset.from_tensors(backward(ex)))

    return dataset.flat_map(both)


def translation_preprocessor(translation: Translation):
    """A seqio preprocessor turning raw parallel examples into tagged (inputs, targets) token pairs."""
    fn = functools.partial(translate, translation=translation)
    fn.__name__ = f"{translation.name}"  # type: ignore[attr-defined]
    return fn
