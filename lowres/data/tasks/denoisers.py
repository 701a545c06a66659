"""Pretraining denoisers on one example at a time, in NumPy: the one implementation of each objective.

A denoiser turns a raw token window into (inputs, targets). `raw_length` says how many raw tokens an
example consumes at given feature lengths, `apply` corrupts one window with a caller-supplied
`np.random.Generator` (so an index-based sampler can derive it from (seed, example index) and a resume
replays nothing), and `finish` trims and appends EOS as seqio's `append_eos_after_trim` does. The
seqio tasks (lowres.data.tasks.objectives) call `apply` per example too.

Span corruption follows T5's `random_spans_noise_mask`: noise = clip(round(L*r), 1, L-1) tokens in
round(noise/mu) spans (or `num_spans`), clipped to [1, min(noise, L-noise)]; noise and non-noise
lengths are uniformly random partitions (noise lengths optionally UL2's normal draws fitted to the
budget); the window starts with a non-noise span and each noise span becomes one sentinel, counting
down from vocab_size-1. The prefix LM splits once, uniformly in [round((1-2r)(L-1)), L-1]. UL2 mode
tokens are reserved ids prepended to the inputs.

This module imports no TensorFlow: the denoiser descriptions and length helpers live here and
lowres.data.tasks.objectives re-exports them.
"""

from __future__ import annotations

import dataclasses
import functools

import gin
import numpy as np

from lowres.config_fields import any_value, at_least, between, greater_than, one_of, validated
from lowres.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Denoiser descriptions


SPAN_LENGTH_DISTRIBUTIONS = ("uniform", "normal")


@gin.configurable
@validated(mean_span_length=at_least(1.0), noise_density=between(0.0, 1.0, low_open=True, high_open=True),
           mode_token=any_value("a mode token such as [NLU], [NLG], [S2S]"), num_spans=at_least(1),
           span_length_distribution=one_of(*SPAN_LENGTH_DISTRIBUTIONS), span_length_stddev=greater_than(0.0))  # fmt: skip
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
@validated(noise_density=between(0.0, 1.0, low_open=True, high_open=True), mode_token=any_value("a mode token such as [NLU], [NLG], [S2S]"))
@dataclasses.dataclass(frozen=True)
class PrefixLM:
    """Split once: the prefix goes to the inputs, the rest (on average `noise_density`) to the targets."""

    noise_density: float = 0.5
    mode_token: str | None = "[S2S]"

    @property
    def name(self) -> str:
        return f"prefix_{_fmt(self.noise_density)}{_mode_suffix(self.mode_token)}"


@gin.configurable
@validated(mode_token=any_value("a mode token such as [NLU], [NLG], [S2S]"))
@dataclasses.dataclass(frozen=True)
class CausalLM:
    """Plain language modelling: empty inputs (or just the mode token), the whole chunk as targets."""

    mode_token: str | None = None

    @property
    def name(self) -> str:
        return f"causal{_mode_suffix(self.mode_token)}"


Denoiser = SpanCorruption | PrefixLM | CausalLM


def _fmt(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def _mode_suffix(mode_token: str | None) -> str:
    return "" if mode_token is None else "_" + mode_token.strip("[]").lower()


# ---------------------------------------------------------------------------------------------
# Lengths


@functools.lru_cache(maxsize=256)
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


def raw_length(denoiser: Denoiser, inputs_length: int, targets_length: int) -> int:
    """Raw tokens one example of `denoiser` consumes so that its inputs and targets (+ EOS) fit the lengths.

    Span corruption: the most whose corrupted inputs fit `inputs_length` (T5's helper); causal LM:
    `targets_length - 1`; prefix LM: `min(inputs_length - 1 - mode, targets_length - 1)`. A
    `ConfigError` names the setting to change when the lengths are too short.
    """
    check_targets_length(denoiser, inputs_length, targets_length)
    extra = 1 + bool(denoiser.mode_token)  # EOS (+ mode token)
    if isinstance(denoiser, SpanCorruption):
        raw, _ = span_corruption_lengths(
            inputs_length, denoiser.noise_density, denoiser.mean_span_length, extra, denoiser.num_spans
        )
        return raw
    if isinstance(denoiser, CausalLM):
        return targets_length - 1
    raw = min(inputs_length - extra, targets_length - 1)
    if raw < 1:
        raise ConfigError(
            f"DataConfig.inputs_length={inputs_length} is too short for {denoiser.name}; use at least {extra + 1}"
        )
    return raw


# ---------------------------------------------------------------------------------------------
# Random draws


def random_segmentation(rng: np.random.Generator, num_items: int, num_segments: int) -> np.ndarray:
    """Lengths (int64, each >= 1, sum `num_items`) of a uniformly random partition into `num_segments` parts.

    As T5's random_segmentation: `num_segments - 1` of the `num_items - 1` gaps between items are
    chosen uniformly (the lowest of one uniform key per gap) as segment boundaries.
    """
    return np.diff(_segment_bounds(rng, num_items, num_segments))


def _segment_bounds(rng: np.random.Generator, num_items: int, num_segments: int) -> np.ndarray:
    """[0, b_1, ..., num_items]: the boundaries of random_segmentation's parts."""
    if not 1 <= num_segments <= num_items:
        raise ValueError(f"cannot split {num_items} items into {num_segments} non-empty segments")
    bounds = np.empty(num_segments + 1, np.int64)
    bounds[0], bounds[-1] = 0, num_items
    if num_segments > 1:
        cuts = rng.random(num_items - 1).argpartition(num_segments - 2)[: num_segments - 1]
        cuts.sort()
        np.add(cuts, 1, out=bounds[1:-1])
    return bounds


def normal_segmentation(
    rng: np.random.Generator, num_items: int, num_segments: int, mean: float, stddev: float
) -> np.ndarray:
    """Lengths (each >= 1, sum `num_items`) drawn from N(mean, stddev) and fitted to the budget (UL2).

    Every part gets one item; the spare items are shared in proportion to each draw's excess over 1,
    rounded along the cumulative sum so that the total is exact.
    """
    return np.diff(_normal_bounds(rng, num_items, num_segments, mean, stddev))


def _normal_bounds(rng: np.random.Generator, num_items: int, num_segments: int, mean: float, stddev: float):
    if not 1 <= num_segments <= num_items:
        raise ValueError(f"cannot split {num_items} items into {num_segments} non-empty segments")
    draws = rng.standard_normal(num_segments)
    draws *= stddev
    draws += mean - 1.0
    excess = np.maximum(draws, 0.0, out=draws)
    excess += 1e-3
    cumulative = np.cumsum(excess)
    cumulative *= (num_items - num_segments) / cumulative[-1]
    bounds = np.empty(num_segments + 1, np.int64)
    bounds[0] = 0
    np.rint(cumulative, out=cumulative)
    bounds[1:] = cumulative
    bounds[-1] = num_items - num_segments  # exact despite float rounding
    bounds += np.arange(num_segments + 1)
    return bounds


def _span_bounds(denoiser: SpanCorruption, length: int, rng: np.random.Generator):
    """(non-noise bounds, noise bounds): each [0, ..., total] over its own token count, one part per span."""
    num_noise = _num_noise(length, denoiser.noise_density)
    spans = _num_spans(length, num_noise, denoiser.mean_span_length, denoiser.num_spans)
    if denoiser.span_length_distribution == "normal":
        noise = _normal_bounds(rng, num_noise, spans, num_noise / spans, denoiser.stddev)
    else:
        noise = _segment_bounds(rng, num_noise, spans)
    nonnoise = _segment_bounds(rng, length - num_noise, spans)
    return nonnoise, noise


def random_spans_noise_mask(
    length: int,
    noise_density: float,
    mean_span_length: float,
    rng: np.random.Generator,
    num_spans: int | None = None,
    span_length_distribution: str = "uniform",
    span_length_stddev: float | None = None,
) -> np.ndarray:
    """Bool [length]: the noise positions span corruption draws with `rng` (as `apply` with the same state).

    round(length * density) noise tokens in alternating spans, starting with a non-noise span (T5);
    spans number round(noise / mu), or `num_spans` when given.
    """
    denoiser = SpanCorruption(mean_span_length, noise_density, None, num_spans, span_length_distribution,
                              span_length_stddev)
    nonnoise, noise = _span_bounds(denoiser, length, rng)
    return _noise_mask(nonnoise, noise)


def random_spans_noise_masks(lengths, noise_density: float, mean_span_length: float, rng: np.random.Generator,
                             **options) -> np.ndarray:
    """Bool [B, max(lengths)]: `random_spans_noise_mask` per row, drawn in turn from `rng` (False past a row's end)."""
    lengths = np.asarray(lengths, np.int64).reshape(-1)
    masks = np.zeros((len(lengths), int(lengths.max(initial=0))), bool)
    for row, length in zip(masks, lengths):
        row[:length] = random_spans_noise_mask(int(length), noise_density, mean_span_length, rng, **options)
    return masks


def _noise_mask(nonnoise: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Bool mask of the window: span j's non-noise part, then its noise part, for each span in turn."""
    spans = len(noise) - 1
    run_lengths = np.empty(2 * spans, np.int64)
    np.subtract(nonnoise[1:], nonnoise[:-1], out=run_lengths[0::2])
    np.subtract(noise[1:], noise[:-1], out=run_lengths[1::2])
    return _alternating(2 * spans).repeat(run_lengths)


_ALTERNATING = np.arange(8192) % 2 == 1  # [F, T, F, T, ...]: non-noise span, noise span, ...


def _alternating(n: int) -> np.ndarray:
    return _ALTERNATING[:n] if n <= len(_ALTERNATING) else np.arange(n) % 2 == 1


def random_prefix_split(length: int, noise_density: float, rng: np.random.Generator) -> int:
    """Split index, uniform in [round((1-2r)(L-1)), L-1] (clipped to [0, L-1]), as T5's random prefix noise mask."""
    low = min(max(int(round((1.0 - 2.0 * noise_density) * (length - 1))), 0), length - 1)
    return int(rng.integers(low, length))


# ---------------------------------------------------------------------------------------------
# Denoising one window


def apply(
    denoiser: Denoiser,
    tokens: np.ndarray,
    rng: np.random.Generator,
    *,
    mode_id: int | None,
    vocab_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) int32 for one raw window `tokens` (1-D, at most `raw_length` long), before EOS.

    `mode_id` is the reserved id of the denoiser's mode token (None exactly when it has none);
    sentinels count down from `vocab_size - 1`. The result depends only on `tokens` and `rng`'s state.
    """
    if bool(denoiser.mode_token) != (mode_id is not None):
        raise ValueError(f"{denoiser.name}: mode_id={mode_id} but mode_token={denoiser.mode_token!r}")
    tokens = np.asarray(tokens, np.int32)
    if tokens.ndim != 1:
        raise ValueError(f"apply takes one 1-D window of tokens, got shape {tokens.shape}")
    if isinstance(denoiser, SpanCorruption):
        return _corrupt_spans(denoiser, tokens, rng, mode_id, vocab_size)
    if len(tokens) < 1:
        raise ValueError(f"{denoiser.name} needs at least 1 token")
    if isinstance(denoiser, CausalLM):
        inputs = np.array([] if mode_id is None else [mode_id], np.int32)
        return inputs, tokens.copy()
    if isinstance(denoiser, PrefixLM):
        split = random_prefix_split(len(tokens), denoiser.noise_density, rng)
        offset = 0 if mode_id is None else 1
        inputs = np.empty(split + offset, np.int32)
        if offset:
            inputs[0] = mode_id
        inputs[offset:] = tokens[:split]
        return inputs, tokens[split:].copy()
    raise TypeError(f"{denoiser!r} is not a denoiser (SpanCorruption, PrefixLM, CausalLM)")


def _corrupt_spans(denoiser: SpanCorruption, tokens: np.ndarray, rng: np.random.Generator,
                   mode_id: int | None, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    length = len(tokens)
    if length < 2:
        raise ValueError(f"{denoiser.name} needs at least 2 tokens, got {length}")
    nonnoise, noise = _span_bounds(denoiser, length, rng)
    spans = len(noise) - 1
    # Non-noise span j covers [nonnoise[j] + noise[j], nonnoise[j+1] + noise[j]); noise span j follows it.
    noise_starts = nonnoise[1:] + noise[:-1]
    nonnoise_starts = nonnoise[:-1] + noise[:-1]
    is_noise = _noise_mask(nonnoise, noise)
    sentinels = np.arange(vocab_size - 1, vocab_size - 1 - spans, -1, dtype=np.int32)

    # Inputs: the non-noise tokens, each noise span replaced by its sentinel (at its first position).
    keep = ~is_noise
    keep[noise_starts] = True
    replaced = tokens.copy()
    replaced[noise_starts] = sentinels
    offset = 0 if mode_id is None else 1
    inputs = np.empty(length - noise[-1] + spans + offset, np.int32)
    if offset:
        inputs[0] = mode_id
    replaced.compress(keep, out=inputs[offset:])

    # Targets: each noise span after its sentinel (the sentinel takes the preceding non-noise span's place).
    is_noise[nonnoise_starts] = True
    replaced = tokens.copy()
    replaced[nonnoise_starts] = sentinels
    targets = replaced[is_noise]
    return inputs, targets


def finish(
    inputs: np.ndarray,
    targets: np.ndarray,
    inputs_length: int | None,
    targets_length: int | None,
    eos_id: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Each feature trimmed to `length - 1` tokens and ended by `eos_id`: seqio's `append_eos_after_trim`.

    A length of None trims nothing, as a feature without a sequence length in seqio.
    """
    return (_append_eos_after_trim(inputs, inputs_length, eos_id),
            _append_eos_after_trim(targets, targets_length, eos_id))


def _append_eos_after_trim(tokens: np.ndarray, length: int | None, eos_id: int) -> np.ndarray:
    tokens = np.asarray(tokens)
    if length is not None:
        tokens = tokens[: length - 1]
    out = np.empty(len(tokens) + 1, tokens.dtype)
    out[:-1] = tokens
    out[-1] = eos_id
    return out
