"""Pretraining objectives as seqio preprocessors built from TensorFlow ops (no per-example Python).

Span corruption follows the T5 algorithm (noise = round(L*r) tokens in round(noise/mu) spans, both
lengths drawn as random partitions, spans alternating non-noise/noise, each noise span replaced by
one sentinel). The prefix LM splits once. UL2 mode tokens are reserved ids prepended to the inputs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import gin
import seqio
import tensorflow as tf

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab.byte_vocabulary import ReservedByteVocabulary
from lowres.errors import ConfigError, DataError


# ---------------------------------------------------------------------------------------------
# Denoiser descriptions


SPAN_LENGTH_DISTRIBUTIONS = ("uniform", "normal")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SpanCorruption:
    """Replace spans (mean length `mean_span_length`, total share `noise_density`) by sentinels.

    `num_spans` fixes the span count instead of round(noise / mean_span_length). Span lengths are
    T5's uniformly random partition, or with `span_length_distribution="normal"` UL2's draws from
    N(mu, `span_length_stddev`, default mu/4) rescaled to the noise budget.
    """

    mean_span_length: float = 3.0
    noise_density: float = 0.15
    mode_token: str | None = "[NLU]"
    num_spans: int | None = None
    span_length_distribution: str = "uniform"
    span_length_stddev: float | None = None

    def __post_init__(self):
        if not 0.0 < self.noise_density < 1.0:
            raise ConfigError(f"SpanCorruption.noise_density={self.noise_density} must lie in (0, 1)")
        if self.mean_span_length < 1.0:
            raise ConfigError(f"SpanCorruption.mean_span_length={self.mean_span_length} must be at least 1")
        if self.num_spans is not None and self.num_spans < 1:
            raise ConfigError(f"SpanCorruption.num_spans={self.num_spans} must be at least 1 (or None)")
        if self.span_length_distribution not in SPAN_LENGTH_DISTRIBUTIONS:
            raise ConfigError(
                f"SpanCorruption.span_length_distribution={self.span_length_distribution!r}; "
                f"choose one of {', '.join(SPAN_LENGTH_DISTRIBUTIONS)}"
            )

    @property
    def name(self) -> str:
        spans = f"n{self.num_spans}" if self.num_spans else _fmt(self.mean_span_length)
        normal = "_normal" if self.span_length_distribution == "normal" else ""
        if normal and self.span_length_stddev is not None:
            normal += _fmt(self.span_length_stddev)
        return f"span_{spans}_{_fmt(self.noise_density)}{normal}{_mode_suffix(self.mode_token)}"

    @property
    def stddev(self) -> float:
        """Standard deviation of the normal span-length draws (ignored for "uniform")."""
        return self.span_length_stddev if self.span_length_stddev is not None else self.mean_span_length / 4


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PrefixLM:
    """Split once: the prefix goes to the inputs, the rest (on average `noise_density`) to the targets."""

    noise_density: float = 0.5
    mode_token: str | None = "[S2S]"

    @property
    def name(self) -> str:
        return f"prefix_{_fmt(self.noise_density)}{_mode_suffix(self.mode_token)}"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CausalLM:
    """Plain language modelling: empty inputs (or just the mode token), the whole chunk as targets."""

    mode_token: str | None = None

    @property
    def name(self) -> str:
        return f"causal{_mode_suffix(self.mode_token)}"


Denoiser = SpanCorruption | PrefixLM | CausalLM


TRANSLATION_DIRECTIONS = ("forward", "backward", "both")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class Translation:
    """Parallel data as `<2tgt> source` -> `target`; "backward" swaps the sides, "both" yields each."""

    direction: str = "forward"
    mode_token: str | None = None

    def __post_init__(self):
        if self.direction not in TRANSLATION_DIRECTIONS:
            raise ConfigError(
                f"Translation.direction={self.direction!r}; choose one of {', '.join(TRANSLATION_DIRECTIONS)}"
            )

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


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def _mode_suffix(mode_token: str | None) -> str:
    return "" if mode_token is None else "_" + mode_token.strip("[]").lower()


# ---------------------------------------------------------------------------------------------
# Length helpers


def span_corruption_lengths(
    inputs_length: int,
    noise_density: float,
    mean_span_length: float,
    extra_input_tokens: int = 1,
    num_spans: int | None = None,
) -> tuple[int, int]:
    """Raw token count whose corrupted inputs fill `inputs_length` exactly, and the targets length needed.

    Inputs = non-noise tokens + one sentinel per span + EOS (+ `extra_input_tokens - 1` mode tokens);
    targets = noise tokens + one sentinel per span + EOS. As T5's `random_spans_helper`.
    """

    def lengths(raw: int) -> tuple[int, int]:
        noise = _num_noise(raw, noise_density)
        spans = _num_spans(raw, noise, mean_span_length, num_spans)
        return raw - noise + spans + extra_input_tokens, noise + spans + 1

    raw = 2
    while lengths(raw + 1)[0] <= inputs_length:
        raw += 1
    inputs, targets = lengths(raw)
    if inputs > inputs_length:
        raise ConfigError(
            f"DataConfig.inputs_length={inputs_length} is too short for span corruption "
            f"(noise_density={noise_density}); use at least {inputs + 1}"
        )
    return raw, targets


def check_targets_length(denoiser: Denoiser, inputs_length: int, targets_length: int) -> int:
    """The targets length `denoiser` needs at `inputs_length`; a clear error when `targets_length` is shorter."""
    mode = 1 if denoiser.mode_token else 0
    if isinstance(denoiser, SpanCorruption):
        _, needed = span_corruption_lengths(
            inputs_length, denoiser.noise_density, denoiser.mean_span_length, 1 + mode, denoiser.num_spans
        )
    else:
        needed = 2  # prefix LM and causal LM cut their chunks to fit targets_length
    if targets_length < needed:
        raise ConfigError(
            f"{denoiser.name} with DataConfig.inputs_length={inputs_length} produces targets of {needed} tokens "
            f"but DataConfig.targets_length={targets_length}; set DataConfig.targets_length >= {needed}"
        )
    return needed


def _num_noise(length: int, density: float) -> int:
    return min(max(int(round(length * density)), 1), length - 1)


def _num_spans(length: int, num_noise: int, mean_span_length: float, fixed: int | None = None) -> int:
    spans = fixed if fixed else int(round(num_noise / mean_span_length))
    return max(min(spans, num_noise, length - num_noise), 1)


# ---------------------------------------------------------------------------------------------
# TensorFlow ops


def plain_tf(fn):
    """Marks a tf.data map function as plain TensorFlow: tracing skips autograph's source rewrite.

    Autograph re-parses each closure for every task, which dominated graph construction (about
    half a CPU-second per task); these functions have no tensor-dependent Python control flow.
    """
    return tf.autograph.experimental.do_not_convert(fn)


# Each op works on a batch of rows (tokens right-padded, `lengths` giving each row's length) so that
# tf.data runs a few vectorised ops per BATCH_SIZE examples instead of a graph per example.
BATCH_SIZE = 128


def random_segmentation(num_items: tf.Tensor, num_segments: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """[B, max(num_segments)] lengths of uniformly random partitions of num_items[b] into num_segments[b] parts.

    Each row chooses num_segments-1 of its num_items-1 gaps uniformly (the lowest-ranked random keys);
    parts beyond num_segments[b] have length 0.
    """
    batch, width = tf.shape(num_items)[0], tf.reduce_max(num_items)
    max_segments = tf.reduce_max(num_segments)
    gap = tf.range(width)[None, :]  # gap g lies between items g and g+1
    keys = tf.random.stateless_uniform([batch, width], seed=seed)
    keys = tf.where(gap < num_items[:, None] - 1, keys, 2.0)
    rank = tf.argsort(tf.argsort(keys, axis=1, stable=True), axis=1, stable=True)  # exact even with tied keys
    boundary = rank < num_segments[:, None] - 1
    first_in_segment = tf.pad(tf.cast(boundary[:, :-1], tf.int32), [[0, 0], [1, 0]])
    segment_id = tf.cumsum(first_in_segment, axis=1) + tf.range(batch)[:, None] * max_segments
    valid = tf.cast(gap < num_items[:, None], tf.int32)
    counts = tf.math.unsorted_segment_sum(valid, segment_id, batch * max_segments)
    return tf.reshape(counts, [batch, max_segments])


def normal_segmentation(
    num_items: tf.Tensor, num_segments: tf.Tensor, mean: tf.Tensor, stddev: float, seed: tf.Tensor
) -> tf.Tensor:
    """[B, max(num_segments)] lengths (>= 1, row sums num_items) drawn from N(mean, stddev), fitted to the budget.

    Every part gets one item; the spare items are shared in proportion to each draw's excess over 1,
    rounded along the cumulative sum so each row's total is exact.
    """
    batch, max_segments = tf.shape(num_items)[0], tf.reduce_max(num_segments)
    valid = tf.range(max_segments)[None, :] < num_segments[:, None]
    draws = tf.random.stateless_normal([batch, max_segments], seed=seed) * stddev + mean[:, None]
    excess = tf.where(valid, tf.maximum(draws - 1.0, 0.0) + 1e-3, 0.0)
    spare = tf.cast(num_items - num_segments, tf.float32)[:, None]
    share = tf.cumsum(excess, axis=1) / tf.reduce_sum(excess, axis=1, keepdims=True)
    cumulative = tf.cast(tf.round(share * spare), tf.int32)
    return tf.where(valid, 1 + cumulative - tf.pad(cumulative[:, :-1], [[0, 0], [1, 0]]), 0)


def random_spans_noise_masks(
    lengths: tf.Tensor,
    noise_density: float,
    mean_span_length: float,
    seeds: tf.Tensor,
    num_spans: int | None = None,
    span_length_distribution: str = "uniform",
    span_length_stddev: float | None = None,
) -> tf.Tensor:
    """Bool [B, max(lengths)]: round(L*density) noise tokens per row in alternating spans (False past L).

    `seeds` is a [2, 2] int tensor (noise and non-noise partitions). Rows start with a non-noise
    span, as in T5; spans number round(noise/mu), or `num_spans` when given.
    """
    lengths = tf.cast(lengths, tf.int32)
    width = tf.reduce_max(lengths)
    num_noise = tf.clip_by_value(
        tf.cast(tf.round(tf.cast(lengths, tf.float32) * noise_density), tf.int32), 1, lengths - 1
    )
    if num_spans:
        spans = tf.fill(tf.shape(lengths), num_spans)
    else:
        spans = tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_span_length), tf.int32)
    spans = tf.maximum(tf.minimum(spans, tf.minimum(num_noise, lengths - num_noise)), 1)
    if span_length_distribution == "normal":
        mean = tf.cast(num_noise, tf.float32) / tf.cast(spans, tf.float32)
        stddev = span_length_stddev if span_length_stddev is not None else mean_span_length / 4
        noise_lengths = normal_segmentation(num_noise, spans, mean, stddev, seeds[0])
    else:
        noise_lengths = random_segmentation(num_noise, spans, seeds[0])
    nonnoise_lengths = random_segmentation(lengths - num_noise, spans, seeds[1])
    batch = tf.shape(lengths)[0]
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=2), [batch, -1])
    span_starts = tf.cumsum(interleaved, axis=1)[:, :-1]  # unused (empty) spans all start at L
    row_offset = tf.range(batch)[:, None] * (width + 1)
    starts = tf.math.unsorted_segment_sum(
        tf.ones_like(span_starts), span_starts + row_offset, batch * (width + 1)
    )
    span_index = tf.cumsum(tf.reshape(starts, [batch, width + 1]), axis=1)[:, :width]
    return tf.logical_and(tf.equal(span_index % 2, 1), tf.sequence_mask(lengths, width))


def random_spans_noise_mask(length, noise_density, mean_span_length, seeds, **options) -> tf.Tensor:
    """The noise mask of one sequence of `length` tokens (see random_spans_noise_masks)."""
    lengths = tf.reshape(tf.cast(length, tf.int32), [1])
    return random_spans_noise_masks(lengths, noise_density, mean_span_length, seeds, **options)[0]


def _replace_spans_with_sentinels(
    tokens: tf.Tensor, span_mask: tf.Tensor, valid: tf.Tensor, vocab_size: int
) -> tf.RaggedTensor:
    """Each row's runs of masked tokens become one sentinel each (vocab_size-1, vocab_size-2, ...)."""
    previous = tf.pad(span_mask[:, :-1], [[0, 0], [1, 0]])
    first = tf.logical_and(span_mask, tf.logical_not(previous))
    rest = tf.logical_and(span_mask, previous)
    sentinels = vocab_size - tf.cumsum(tf.cast(first, tokens.dtype), axis=1)
    replaced = tf.where(first, sentinels, tokens)
    return tf.ragged.boolean_mask(replaced, tf.logical_and(valid, tf.logical_not(rest)))


def _prepend(tokens: tf.RaggedTensor, token_id: int | None) -> tf.RaggedTensor:
    """Puts `token_id` (a mode token) in front of every row."""
    if token_id is None:
        return tokens
    column = tf.fill([tokens.nrows(), 1], tf.constant(token_id, tokens.dtype))
    return tf.concat([tf.RaggedTensor.from_tensor(column), tokens], axis=1)


def _unbatch(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Rows of batched (ragged) features as plain 1-D tensors, as seqio expects."""

    @plain_tf
    def as_tensors(example):
        return {k: tf.identity(v) for k, v in example.items()}

    return dataset.unbatch().map(as_tensors, num_parallel_calls=tf.data.AUTOTUNE)


def _padded(batch: tf.RaggedTensor | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Dense right-padded tokens, their row lengths (int32) and validity mask.

    `ragged_batch` yields a dense tensor when every element has the same static length.
    """
    if isinstance(batch, tf.RaggedTensor):
        lengths, dense = tf.cast(batch.row_lengths(), tf.int32), batch.to_tensor()
    else:
        dense = batch
        lengths = tf.fill(tf.shape(dense)[:1], tf.shape(dense)[1])
    return dense, lengths, tf.sequence_mask(lengths, tf.shape(dense)[1])


# ---------------------------------------------------------------------------------------------
# seqio preprocessors


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
    """Turns tokenized text in `targets` into (inputs, targets) for `denoiser`; EOS is added later."""
    vocabulary = output_features["targets"].vocabulary
    mode_id = vocab_lib.reserved_id(vocabulary, denoiser.mode_token) if denoiser.mode_token else None
    inputs_length = sequence_length["inputs"]
    extra = 1 + (mode_id is not None)
    if isinstance(denoiser, SpanCorruption):
        check_targets_length(denoiser, inputs_length, sequence_length["targets"])
        raw_length, _ = span_corruption_lengths(
            inputs_length, denoiser.noise_density, denoiser.mean_span_length, extra, denoiser.num_spans
        )
        dataset = split_into_chunks(dataset, raw_length)
        return span_corrupt(dataset, denoiser, mode_id, vocabulary.vocab_size)
    if isinstance(denoiser, CausalLM):
        dataset = split_into_chunks(dataset, sequence_length["targets"] - 1)
        return _causal(dataset, mode_id)
    raw_length = min(inputs_length - extra, sequence_length["targets"] - 1)
    dataset = split_into_chunks(dataset, raw_length)
    return _prefix_split(dataset, denoiser, mode_id)


def span_corrupt(
    dataset: tf.data.Dataset, denoiser: SpanCorruption, mode_id: int | None, vocab_size: int
) -> tf.data.Dataset:
    """Chunks in `targets` -> {"inputs": [mode] tokens with sentinels, "targets": sentinels + spans}."""

    corrupt_batch = _shared_corrupt_spans(denoiser, mode_id, vocab_size)

    @seqio.map_over_dataset(num_seeds=2)
    @plain_tf
    def corrupt(batch, seeds):
        return corrupt_batch(batch["targets"], tf.stack(seeds))

    return _unbatch(corrupt(dataset.ragged_batch(BATCH_SIZE)))


@functools.lru_cache(maxsize=None)
def _shared_corrupt_spans(denoiser: SpanCorruption, mode_id: int | None, vocab_size: int):
    """corrupt_spans for one denoiser as a tf.function: traced once, then shared by every language's task.

    Building these ragged ops took about a CPU-second per task; a 140-task UL2 mixture now traces 6.
    """

    @functools.partial(tf.function, autograph=False)
    def corrupt(tokens, seeds):
        return corrupt_spans(tokens, denoiser, mode_id, vocab_size, seeds)

    return corrupt


def corrupt_spans(
    tokens: tf.RaggedTensor | tf.Tensor, denoiser: SpanCorruption, mode_id: int | None, vocab_size: int,
    seeds: tf.Tensor,
) -> dict[str, tf.RaggedTensor]:
    """Span corruption of a batch of rows: ragged inputs ([mode] + tokens with sentinels) and targets."""
    tokens, lengths, valid = _padded(tokens)
    mask = random_spans_noise_masks(
        lengths, denoiser.noise_density, denoiser.mean_span_length, seeds,
        denoiser.num_spans, denoiser.span_length_distribution, denoiser.stddev,
    )  # fmt: skip
    inputs = _replace_spans_with_sentinels(tokens, mask, valid, vocab_size)
    targets = _replace_spans_with_sentinels(tokens, tf.logical_and(valid, tf.logical_not(mask)), valid, vocab_size)
    return {"inputs": _prepend(inputs, mode_id), "targets": targets}


def _prefix_split(dataset, denoiser: PrefixLM, mode_id):
    split_batch = _shared_prefix_split(denoiser, mode_id)

    @seqio.map_over_dataset(num_seeds=1)
    @plain_tf
    def split(batch, seed):
        return split_batch(batch["targets"], seed)

    return _unbatch(split(dataset.ragged_batch(BATCH_SIZE)))


@functools.lru_cache(maxsize=None)
def _shared_prefix_split(denoiser: PrefixLM, mode_id: int | None):
    """The prefix-LM split of a batch as a tf.function traced once and shared by every task."""

    @functools.partial(tf.function, autograph=False)
    def split(tokens, seed):
        tokens, lengths, valid = _padded(tokens)
        split_at = random_prefix_split(lengths, denoiser.noise_density, seed)
        in_prefix = tf.range(tf.shape(tokens)[1])[None, :] < split_at[:, None]
        inputs = tf.ragged.boolean_mask(tokens, tf.logical_and(valid, in_prefix))
        targets = tf.ragged.boolean_mask(tokens, tf.logical_and(valid, tf.logical_not(in_prefix)))
        return {"inputs": _prepend(inputs, mode_id), "targets": targets}

    return split


def _causal(dataset, mode_id):
    @plain_tf
    def to_lm(example):
        tokens = example["targets"]
        inputs = tf.zeros([0], tokens.dtype) if mode_id is None else tf.constant([mode_id], tokens.dtype)
        return {"inputs": inputs, "targets": tokens}

    return dataset.map(to_lm, num_parallel_calls=tf.data.AUTOTUNE)


def random_prefix_split(lengths: tf.Tensor, noise_density: float, seed: tf.Tensor) -> tf.Tensor:
    """Split index per row, uniform in [round((1-2r)(L-1)), L-1], as T5's random prefix noise mask."""
    lengths = tf.cast(lengths, tf.int32)
    low = tf.cast(tf.round((1.0 - 2.0 * noise_density) * tf.cast(lengths - 1, tf.float32)), tf.int32)
    low = tf.clip_by_value(low, 0, lengths - 1)
    uniform = tf.random.stateless_uniform(tf.shape(lengths), seed=seed)
    return low + tf.minimum(tf.cast(uniform * tf.cast(lengths - low, tf.float32), tf.int32), lengths - low - 1)


def denoiser_preprocessor(denoiser: Denoiser):
    """A seqio preprocessor applying `denoiser` (seqio passes sequence_length and output_features)."""
    fn = functools.partial(denoise, denoiser=denoiser)
    fn.__name__ = f"denoise_{denoiser.name}"  # type: ignore[attr-defined]
    return fn


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
