"""Pretraining objectives as seqio preprocessors built from TensorFlow ops (no per-example Python).

Span corruption follows the T5 algorithm (noise = round(L*r) tokens in round(noise/mu) spans, both
lengths drawn as random partitions, spans alternating non-noise/noise, each noise span replaced by
one sentinel). The prefix LM splits once. UL2 mode tokens are reserved ids prepended to the inputs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import gin
import seqio
import tensorflow as tf

from lowres.data import vocab as vocab_lib


# ---------------------------------------------------------------------------------------------
# Denoiser descriptions


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SpanCorruption:
    """Replace spans (mean length `mean_span_length`, total share `noise_density`) by sentinels."""

    mean_span_length: float = 3.0
    noise_density: float = 0.15
    mode_token: str | None = "[NLU]"

    @property
    def name(self) -> str:
        return f"span_{_fmt(self.mean_span_length)}_{_fmt(self.noise_density)}{_mode_suffix(self.mode_token)}"


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
            raise ValueError(
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


def objective(name: str) -> tuple[tuple[Denoiser, float], ...]:
    """The (denoiser, rate) list of a named objective."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def _mode_suffix(mode_token: str | None) -> str:
    return "" if mode_token is None else "_" + mode_token.strip("[]").lower()


# ---------------------------------------------------------------------------------------------
# Length helpers


def span_corruption_lengths(
    inputs_length: int, noise_density: float, mean_span_length: float, extra_input_tokens: int = 1
) -> tuple[int, int]:
    """Raw token count whose corrupted inputs fill `inputs_length` exactly, and the targets length needed.

    Inputs = non-noise tokens + one sentinel per span + EOS (+ `extra_input_tokens - 1` mode tokens);
    targets = noise tokens + one sentinel per span + EOS.
    """

    def lengths(raw: int) -> tuple[int, int]:
        noise = _num_noise(raw, noise_density)
        spans = _num_spans(noise, mean_span_length)
        return raw - noise + spans + extra_input_tokens, noise + spans + 1

    raw = 2
    while lengths(raw + 1)[0] <= inputs_length:
        raw += 1
    inputs, targets = lengths(raw)
    if inputs > inputs_length:
        raise ValueError(f"inputs_length={inputs_length} is too short for span corruption")
    return raw, targets


def check_targets_length(denoiser: Denoiser, inputs_length: int, targets_length: int) -> None:
    """Raises a clear error when `targets_length` cannot hold the denoiser's targets."""
    if isinstance(denoiser, SpanCorruption):
        mode = 1 if denoiser.mode_token else 0
        _, needed = span_corruption_lengths(
            inputs_length, denoiser.noise_density, denoiser.mean_span_length, 1 + mode
        )
        if targets_length < needed:
            raise ValueError(
                f"{denoiser.name} with inputs_length={inputs_length} produces targets of {needed} tokens "
                f"but targets_length={targets_length}; set targets_length >= {needed}"
            )


def _num_noise(length: int, density: float) -> int:
    return min(max(int(round(length * density)), 1), length - 1)


def _num_spans(num_noise: int, mean_span_length: float) -> int:
    return max(int(round(num_noise / mean_span_length)), 1)


# ---------------------------------------------------------------------------------------------
# TensorFlow ops


def random_segmentation(num_items: tf.Tensor, num_segments: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Lengths of a uniformly random partition of `num_items` into `num_segments` non-empty parts."""
    first_in_segment = tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32)
    first_in_segment = tf.random.experimental.stateless_shuffle(first_in_segment, seed=seed)
    first_in_segment = tf.pad(first_in_segment, [[1, 0]])
    segment_id = tf.cumsum(first_in_segment)
    return tf.math.segment_sum(tf.ones_like(segment_id), segment_id)


def random_spans_noise_mask(
    length: tf.Tensor, noise_density: float, mean_span_length: float, seeds: tf.Tensor
) -> tf.Tensor:
    """Boolean mask of `length` with round(length*density) noise tokens in alternating spans.

    `seeds` is a [2, 2] int tensor (one stateless seed per partition). The sequence always starts
    with a non-noise span, as in T5.
    """
    length = tf.cast(length, tf.int32)
    num_noise = tf.clip_by_value(
        tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32), 1, length - 1
    )
    num_spans = tf.maximum(
        tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_span_length), tf.int32), 1
    )
    noise_lengths = random_segmentation(num_noise, num_spans, seeds[0])
    nonnoise_lengths = random_segmentation(length - num_noise, num_spans, seeds[1])
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [-1])
    span_starts = tf.cumsum(interleaved)[:-1]
    starts = tf.scatter_nd(tf.expand_dims(span_starts, 1), tf.ones_like(span_starts), [length])
    span_index = tf.cumsum(starts)
    return tf.equal(span_index % 2, 1)


def _replace_spans_with_sentinels(tokens: tf.Tensor, span_mask: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """Each run of masked tokens becomes one sentinel (vocab_size-1, vocab_size-2, ...)."""
    previous = tf.pad(span_mask[:-1], [[1, 0]])
    first = tf.logical_and(span_mask, tf.logical_not(previous))
    rest = tf.logical_and(span_mask, previous)
    sentinels = vocab_size - tf.cumsum(tf.cast(first, tokens.dtype))
    replaced = tf.where(first, sentinels, tokens)
    return tf.boolean_mask(replaced, tf.logical_not(rest))


def _prepend(tokens: tf.Tensor, token_id: int | None) -> tf.Tensor:
    if token_id is None:
        return tokens
    return tf.concat([tf.constant([token_id], tokens.dtype), tokens], axis=0)


# ---------------------------------------------------------------------------------------------
# seqio preprocessors


def split_into_chunks(dataset: tf.data.Dataset, chunk_length: int, feature: str = "targets") -> tf.data.Dataset:
    """Concatenates the token stream of `feature` across documents and cuts it into fixed chunks.

    Other features are dropped except string metadata of the first document (`lang`).
    """

    def select(example):
        return example[feature]

    def longer_than_one(chunk):
        return tf.size(chunk) > 1

    def as_example(chunk):
        return {feature: chunk}

    tokens = dataset.map(select, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
    chunks = tokens.batch(chunk_length, drop_remainder=False)
    return chunks.filter(longer_than_one).map(as_example, num_parallel_calls=tf.data.AUTOTUNE)


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
            inputs_length, denoiser.noise_density, denoiser.mean_span_length, extra
        )
        dataset = split_into_chunks(dataset, raw_length)
        return _span_corrupt(dataset, denoiser, mode_id, vocabulary.vocab_size)
    if isinstance(denoiser, CausalLM):
        dataset = split_into_chunks(dataset, sequence_length["targets"] - 1)
        return _causal(dataset, mode_id)
    raw_length = min(inputs_length - extra, sequence_length["targets"] - 1)
    dataset = split_into_chunks(dataset, raw_length)
    return _prefix_split(dataset, denoiser, mode_id)


def _span_corrupt(dataset, denoiser: SpanCorruption, mode_id, vocab_size):
    @seqio.map_over_dataset(num_seeds=2)
    def corrupt(example, seeds):
        tokens = example["targets"]
        mask = random_spans_noise_mask(
            tf.size(tokens), denoiser.noise_density, denoiser.mean_span_length, tf.stack(seeds)
        )
        return {
            "inputs": _prepend(_replace_spans_with_sentinels(tokens, mask, vocab_size), mode_id),
            "targets": _replace_spans_with_sentinels(tokens, tf.logical_not(mask), vocab_size),
        }

    return corrupt(dataset)


def _prefix_split(dataset, denoiser: PrefixLM, mode_id):
    @seqio.map_over_dataset(num_seeds=1)
    def split(example, seed):
        tokens = example["targets"]
        length = tf.size(tokens)
        split_at = random_prefix_split(length, denoiser.noise_density, seed)
        return {"inputs": _prepend(tokens[:split_at], mode_id), "targets": tokens[split_at:]}

    return split(dataset)


def _causal(dataset, mode_id):
    def to_lm(example):
        tokens = example["targets"]
        return {"inputs": _prepend(tf.zeros([0], tokens.dtype), mode_id), "targets": tokens}

    return dataset.map(to_lm, num_parallel_calls=tf.data.AUTOTUNE)


def random_prefix_split(length: tf.Tensor, noise_density: float, seed: tf.Tensor) -> tf.Tensor:
    """Split index drawn uniformly in [round((1-2r)(L-1)), L-1], as T5's random prefix noise mask."""
    low = tf.cast(tf.round((1.0 - 2.0 * noise_density) * tf.cast(length - 1, tf.float32)), tf.int32)
    low = tf.clip_by_value(low, 0, length - 1)
    return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=length, dtype=tf.int32)


def denoiser_preprocessor(denoiser: Denoiser):
    """A seqio preprocessor applying `denoiser` (seqio passes sequence_length and output_features)."""
    fn = functools.partial(denoise, denoiser=denoiser)
    fn.__name__ = f"denoise_{denoiser.name}"  # type: ignore[attr-defined]
    return fn


# ---------------------------------------------------------------------------------------------
# Translation


def language_tag_table(vocabulary: seqio.SentencePieceVocabulary) -> tf.lookup.StaticHashTable:
    """Language code (e.g. `pan_Guru`) -> id of its reserved `<2pan_Guru>` tag; -1 for unknown codes."""
    processor = vocabulary.tokenizer
    codes, ids = [], []
    for piece_id in range(processor.get_piece_size()):
        piece = processor.id_to_piece(piece_id)
        if processor.is_control(piece_id) and piece.startswith("<2") and piece.endswith(">"):
            codes.append(piece[2:-1])
            ids.append(piece_id)
    if not codes:
        raise ValueError(
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
        inputs = tf.concat([tf.reshape(tag, [1]), source_tokens], axis=0)
        return {"inputs": _prepend(inputs, mode_id), "targets": tf.cast(vocabulary.encode_tf(target_text), tf.int32)}

    def forward(ex):
        return one_way(ex["src_text"], ex["tgt_text"], ex["tgt_lang"])

    def backward(ex):
        return one_way(ex["tgt_text"], ex["src_text"], ex["src_lang"])

    if translation.direction == "forward":
        return dataset.map(forward, num_parallel_calls=tf.data.AUTOTUNE)
    if translation.direction == "backward":
        return dataset.map(backward, num_parallel_calls=tf.data.AUTOTUNE)

    def both(ex):
        return tf.data.Dataset.from_tensors(forward(ex)).concatenate(tf.data.Dataset.from_tensors(backward(ex)))

    return dataset.flat_map(both)


def translation_preprocessor(translation: Translation):
    """A seqio preprocessor turning raw parallel examples into tagged (inputs, targets) token pairs."""
    fn = functools.partial(translate, translation=translation)
    fn.__name__ = f"{translation.name}"  # type: ignore[attr-defined]
    return fn
