"""The NumPy denoisers (lowres.data.tasks.denoisers): UL2 statistics over 10k examples, exact
reconstruction, prefix splits, mode tokens, lengths, seqio's EOS handling and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from lowres.data.tasks import denoisers as dn
from lowres.errors import ConfigError

V, EXTRA, MODE = 32000, 1000, 5  # synthetic vocabulary: tokens in [10, V - EXTRA), sentinels above
NUM_EXAMPLES = 10_000

UL2 = [
    dn.SpanCorruption(3.0, 0.15, "[NLU]"),
    dn.SpanCorruption(8.0, 0.15, "[NLU]"),
    dn.SpanCorruption(3.0, 0.5, "[NLG]"),
    dn.SpanCorruption(8.0, 0.5, "[NLG]"),
    dn.SpanCorruption(64.0, 0.15, "[NLG]"),
    dn.SpanCorruption(64.0, 0.5, "[NLG]"),
]
SPAN_DENOISERS = UL2 + [
    dn.SpanCorruption(3.0, 0.15, "[NLU]", num_spans=5),
    dn.SpanCorruption(8.0, 0.5, "[NLG]", span_length_distribution="normal"),
    dn.SpanCorruption(12.0, 0.5, "[NLG]", num_spans=4, span_length_distribution="normal"),  # custom.gin's x
    dn.SpanCorruption(3.0, 0.15, None),  # T5
]
ALL_DENOISERS = SPAN_DENOISERS + [
    dn.PrefixLM(0.25, "[S2S]"), dn.PrefixLM(0.5, None), dn.CausalLM(), dn.CausalLM("[S2S]"),
]


def _mode(denoiser):
    return MODE if denoiser.mode_token else None


def _windows(num: int, length: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(10, V - EXTRA, size=(num, length), dtype=np.int32)


def _apply_all(denoiser, windows, seed=1):
    """Inputs and targets of every window (rng per example from (seed, i)), stacked when all lengths agree."""
    outs = [dn.apply(denoiser, w, np.random.default_rng([seed, i]), mode_id=_mode(denoiser), vocab_size=V)
            for i, w in enumerate(windows)]
    return np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])


def _reconstruct(inputs, targets):
    """Merges [B, *] inputs and targets through their sentinels, vectorised: each span goes where its sentinel was."""
    is_sentinel_in, is_sentinel_tg = inputs >= V - EXTRA, targets >= V - EXTRA
    # Non-noise run k (after k sentinels) sorts as 2k, the noise span of sentinel k+1 as 2k+1; sentinels last.
    key_in = np.where(is_sentinel_in, np.iinfo(np.int32).max // 4, 2 * np.cumsum(is_sentinel_in, axis=1))
    key_tg = np.where(is_sentinel_tg, np.iinfo(np.int32).max // 4, 2 * np.cumsum(is_sentinel_tg, axis=1) - 1)
    keys = np.concatenate([key_in, key_tg], axis=1).astype(np.int64)
    values = np.concatenate([inputs, targets], axis=1)
    order = np.argsort(keys * values.shape[1] + np.arange(values.shape[1]), axis=1)
    merged = np.take_along_axis(values, order, axis=1)
    return merged[:, : values.shape[1] - 2 * is_sentinel_in.sum(1).max()]


def _stat_inputs_length(denoiser) -> int:
    """The shortest power-of-two inputs length at which T5's rounding leaves the rate within 1% of r
    and (without num_spans) the span count within 7% of noise/mu: UL2's 64-token spans need long windows."""
    for length in (128, 256, 512, 1024, 2048):
        raw = dn.raw_length(denoiser, length, 10 * length)
        noise = dn._num_noise(raw, denoiser.noise_density)
        spans = dn._num_spans(raw, noise, denoiser.mean_span_length, denoiser.num_spans)
        rate_ok = abs(noise / raw - denoiser.noise_density) < 0.01 * denoiser.noise_density
        if rate_ok and (denoiser.num_spans or abs(noise / spans / denoiser.mean_span_length - 1) < 0.07):
            return length
    raise AssertionError(denoiser)


# ---------------------------------------------------------------------------------------------
# Span corruption


@pytest.mark.parametrize("denoiser", SPAN_DENOISERS, ids=lambda d: d.name)
def test_span_corruption_statistics_over_10k_examples(denoiser):
    inputs_length = _stat_inputs_length(denoiser)
    raw = dn.raw_length(denoiser, inputs_length, 10 * inputs_length)
    targets_needed = dn.check_targets_length(denoiser, inputs_length, 10 * inputs_length)
    noise = dn._num_noise(raw, denoiser.noise_density)
    expected_spans = dn._num_spans(raw, noise, denoiser.mean_span_length, denoiser.num_spans)
    windows = _windows(NUM_EXAMPLES, raw)
    inputs, targets = _apply_all(denoiser, windows)
    assert inputs.dtype == targets.dtype == np.int32
    offset = 0
    if denoiser.mode_token:  # the mode token exactly once, first; never in the targets
        assert (inputs[:, 0] == MODE).all() and ((inputs == MODE).sum(1) == 1).all()
        offset = 1
    assert not (targets == MODE).any()
    body = inputs[:, offset:]
    # Lengths: inputs + EOS fill inputs_length up to one token, targets + EOS exactly the helper's length.
    assert inputs_length - 1 <= inputs.shape[1] + 1 <= inputs_length
    assert targets.shape[1] + 1 == targets_needed
    # Sentinels: one per span, counting down from V-1, in the same order in inputs and targets.
    sentinels = V - 1 - np.arange(expected_spans)
    is_sentinel = body >= V - EXTRA
    assert (is_sentinel.sum(1) == expected_spans).all() and ((targets >= V - EXTRA).sum(1) == expected_spans).all()
    all_sentinels = np.broadcast_to(sentinels, (NUM_EXAMPLES, expected_spans))
    np.testing.assert_array_equal(body[is_sentinel].reshape(NUM_EXAMPLES, -1), all_sentinels)
    np.testing.assert_array_equal(targets[targets >= V - EXTRA].reshape(NUM_EXAMPLES, -1), all_sentinels)
    assert not is_sentinel[:, 0].any(), "T5 starts with a non-noise span"
    assert (targets[:, 0] == V - 1).all() and is_sentinel[:, -1].all(), "and ends with a noise span"
    # Exact reconstruction through the sentinels.
    np.testing.assert_array_equal(_reconstruct(body, targets), windows)
    # Span lengths: tokens between consecutive sentinels of the targets.
    is_target_sentinel = targets >= V - EXTRA
    span_id = np.cumsum(is_target_sentinel, axis=1) - 1 + (np.arange(NUM_EXAMPLES) * expected_spans)[:, None]
    lengths = np.bincount(span_id[~is_target_sentinel], minlength=NUM_EXAMPLES * expected_spans)
    noise_total, spans_total = int((~is_target_sentinel).sum()), NUM_EXAMPLES * expected_spans
    assert lengths.min() >= 1 and lengths.sum() == noise_total == noise * NUM_EXAMPLES
    # The realised corruption rate within 1% of r, the mean span length within 10% of mu (of noise / num_spans
    # when the span count is fixed, which then decides the span length).
    assert abs(noise_total / windows.size - denoiser.noise_density) < 0.01 * denoiser.noise_density
    mu = noise / denoiser.num_spans if denoiser.num_spans else denoiser.mean_span_length
    assert abs(lengths.mean() - mu) < 0.1 * mu
    if denoiser.num_spans:
        assert spans_total == denoiser.num_spans * NUM_EXAMPLES
    if denoiser.span_length_distribution == "normal":
        # UL2's normal spans concentrate around mu (std mu/4); T5's uniform partition spreads them (std ~ mu).
        assert 0.5 * denoiser.stddev < lengths.std() < 1.5 * denoiser.stddev
    elif expected_spans > 1:
        assert lengths.std() > 0.5 * lengths.mean() - 1
    # Non-noise runs: one before each sentinel, none empty.
    run_starts = np.diff(is_sentinel.astype(int), prepend=1, axis=1) == -1
    assert (run_starts.sum(1) == expected_spans).all(), "every non-noise run is non-empty"


@pytest.mark.parametrize("denoiser", SPAN_DENOISERS, ids=lambda d: d.name)
def test_every_shorter_window_reconstructs_and_fits(denoiser):
    """Windows of 2..raw tokens (a stream's last chunk): exact reconstruction, T5's counts, within the lengths."""
    inputs_length = targets_length = 128
    raw = dn.raw_length(denoiser, inputs_length, 4 * targets_length)
    rng = np.random.default_rng(3)
    offset = 1 if denoiser.mode_token else 0
    for length in range(2, raw + 1):
        window = _windows(1, length, seed=length)[0]
        inputs, targets = dn.apply(denoiser, window, rng, mode_id=_mode(denoiser), vocab_size=V)
        noise = dn._num_noise(length, denoiser.noise_density)
        spans = dn._num_spans(length, noise, denoiser.mean_span_length, denoiser.num_spans)
        assert len(inputs) == offset + length - noise + spans and len(targets) == noise + spans
        assert len(inputs) + 1 <= inputs_length
        np.testing.assert_array_equal(_reconstruct(inputs[None, offset:], targets[None])[0], window)


def test_targets_fit_the_length_helper_where_float32_rounding_used_to_differ():
    """At inputs_length=173, span_3_0p15_nlu's raw window is 190 tokens: 190 * 0.15 rounds to 28 noise tokens in
    float64 (the length helper) but to 29 in float32 (the former TensorFlow mask), one target token too many."""
    denoiser = dn.SpanCorruption(3.0, 0.15, "[NLU]")
    raw, targets_needed = dn.span_corruption_lengths(173, 0.15, 3.0, 2)
    assert raw == 190 and dn.raw_length(denoiser, 173, targets_needed) == 190
    inputs, targets = dn.apply(denoiser, _windows(1, raw)[0], np.random.default_rng(0), mode_id=MODE, vocab_size=V)
    assert len(targets) + 1 == targets_needed and len(inputs) + 1 == 173


def test_random_segmentation_is_uniform_over_compositions():
    """6 items in 3 non-empty parts: each of the C(5, 2) = 10 compositions about equally often (chi-square)."""
    rng = np.random.default_rng(0)
    draws = np.array([dn.random_segmentation(rng, 6, 3) for _ in range(20_000)])
    assert (draws.sum(1) == 6).all() and draws.min() >= 1
    _, counts = np.unique(draws, axis=0, return_counts=True)
    assert len(counts) == 10
    expected = len(draws) / 10
    assert ((counts - expected) ** 2 / expected).sum() < 30  # df 9: p < 0.001
    assert list(dn.random_segmentation(rng, 5, 1)) == [5] and list(dn.random_segmentation(rng, 4, 4)) == [1] * 4


def test_noise_mask_is_the_one_apply_draws():
    """random_spans_noise_mask (whose statistics tests/test_objectives.py checks) draws what apply draws."""
    for denoiser in (dn.SpanCorruption(8.0, 0.5, None, span_length_distribution="normal"),
                     dn.SpanCorruption(3.0, 0.15, None, num_spans=5)):
        mask = dn.random_spans_noise_mask(1000, denoiser.noise_density, denoiser.mean_span_length,
                                          np.random.default_rng(1), denoiser.num_spans,
                                          denoiser.span_length_distribution)
        window = _windows(1, 1000)[0]
        _, targets = dn.apply(denoiser, window, np.random.default_rng(1), mode_id=None, vocab_size=V)
        np.testing.assert_array_equal(targets[targets < V - EXTRA], window[mask])
        assert mask.sum() == round(1000 * denoiser.noise_density)


# ---------------------------------------------------------------------------------------------
# Prefix LM and causal LM


def test_prefix_split_is_uniform_over_its_range_over_10k_examples():
    denoiser, length = dn.PrefixLM(0.25, "[S2S]"), 200
    windows = _windows(NUM_EXAMPLES, length)
    outs = [dn.apply(denoiser, w, np.random.default_rng([2, i]), mode_id=MODE, vocab_size=V)
            for i, w in enumerate(windows)]
    splits = np.array([len(inputs) - 1 for inputs, _ in outs])
    low = round((1 - 2 * 0.25) * (length - 1))  # 100: the split lies in [round((1-2r)(L-1)), L-1]
    assert splits.min() == low and splits.max() == length - 1
    counts = np.bincount(splits - low, minlength=length - low)
    expected = NUM_EXAMPLES / (length - low)
    assert ((counts - expected) ** 2 / expected).sum() < 99 + 5 * np.sqrt(2 * 99)  # chi-square, df 99
    assert abs(np.mean(length - splits) / length - 0.25) < 0.01
    assert all(inputs[0] == MODE and (inputs == MODE).sum() == 1 and MODE not in targets for inputs, targets in outs)
    for window, (inputs, targets) in zip(windows, outs):
        np.testing.assert_array_equal(np.concatenate([inputs[1:], targets]), window)


def test_prefix_and_causal_edges():
    rng = np.random.default_rng(0)
    window = np.array([11, 12, 13], np.int32)
    inputs, targets = dn.apply(dn.PrefixLM(0.5, None), window[:1], rng, mode_id=None, vocab_size=V)
    assert len(inputs) == 0 and list(targets) == [11]  # one token: the split is 0
    splits = {len(dn.apply(dn.PrefixLM(0.5, None), window, rng, mode_id=None, vocab_size=V)[0]) for _ in range(100)}
    assert splits == {0, 1, 2}, "r = 0.5 splits anywhere in [0, L-1]"
    for mode, expected in ((None, []), (MODE, [MODE])):
        inputs, targets = dn.apply(dn.CausalLM("[S2S]" if mode else None), window, rng, mode_id=mode, vocab_size=V)
        assert list(inputs) == expected and inputs.dtype == np.int32
        np.testing.assert_array_equal(targets, window)


# ---------------------------------------------------------------------------------------------
# Lengths, EOS, determinism


@pytest.mark.parametrize("inputs_length,targets_length", [(128, 128), (512, 114), (64, 64), (173, 40)])
def test_raw_length_is_what_the_seqio_tasks_cut(inputs_length, targets_length):
    for denoiser in ALL_DENOISERS:
        extra = 1 + bool(denoiser.mode_token)
        if isinstance(denoiser, dn.SpanCorruption):
            raw, needed = dn.span_corruption_lengths(inputs_length, denoiser.noise_density,
                                                     denoiser.mean_span_length, extra, denoiser.num_spans)
            if targets_length < needed:
                with pytest.raises(ConfigError, match=f"DataConfig.targets_length >= {needed}"):
                    dn.raw_length(denoiser, inputs_length, targets_length)
                continue
        elif isinstance(denoiser, dn.CausalLM):
            raw = targets_length - 1
        else:
            raw = min(inputs_length - extra, targets_length - 1)
        assert dn.raw_length(denoiser, inputs_length, targets_length) == raw, denoiser.name
        # A full window then fits both lengths after EOS without trimming anything.
        inputs, targets = dn.apply(denoiser, _windows(1, raw)[0], np.random.default_rng(0),
                                   mode_id=_mode(denoiser), vocab_size=V)
        assert len(inputs) + 1 <= inputs_length and len(targets) + 1 <= targets_length, denoiser.name


def test_length_errors_name_the_setting():
    with pytest.raises(ConfigError, match="DataConfig.inputs_length=2 is too short"):
        dn.raw_length(dn.SpanCorruption(3.0, 0.15, None), 2, 128)
    with pytest.raises(ConfigError, match="DataConfig.targets_length >= 2"):
        dn.raw_length(dn.CausalLM(), 128, 1)
    with pytest.raises(ConfigError, match="DataConfig.inputs_length=2 is too short for prefix_0p5_s2s"):
        dn.raw_length(dn.PrefixLM(0.5, "[S2S]"), 2, 128)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        dn.apply(dn.SpanCorruption(3.0, 0.15, None), np.array([7], np.int32), np.random.default_rng(), mode_id=None,
                 vocab_size=V)
    with pytest.raises(ValueError, match="mode_id"):
        dn.apply(dn.SpanCorruption(3.0, 0.15, "[NLU]"), np.arange(10), np.random.default_rng(), mode_id=None,
                 vocab_size=V)


def test_finish_equals_seqio_append_eos_after_trim():
    import seqio
    import tensorflow as tf

    examples = []
    rng = np.random.default_rng(0)
    for denoiser in (dn.SpanCorruption(3.0, 0.5, "[NLG]"), dn.PrefixLM(0.25, "[S2S]"), dn.CausalLM()):
        for length in (2, 40, 300):  # 300 tokens overflow the lengths below: trimmed
            examples.append(dn.apply(denoiser, _windows(1, length, seed=length)[0], rng, mode_id=_mode(denoiser),
                                     vocab_size=V))
    vocabulary = seqio.PassThroughVocabulary(V, eos_id=1)
    features = {"inputs": seqio.Feature(vocabulary, add_eos=True, required=False),
                "targets": seqio.Feature(vocabulary, add_eos=True)}
    dataset = tf.data.Dataset.from_generator(
        lambda: ({"inputs": i, "targets": t} for i, t in examples),
        output_signature={k: tf.TensorSpec([None], tf.int32) for k in ("inputs", "targets")})
    for lengths in ({"inputs": 64, "targets": 32}, {"inputs": 1, "targets": 2}, None):
        expected = list(seqio.preprocessors.append_eos_after_trim(dataset, features, lengths).as_numpy_iterator())
        assert len(expected) == len(examples)
        for (inputs, targets), ex in zip(examples, expected):
            got = dn.finish(inputs, targets, lengths and lengths["inputs"], lengths and lengths["targets"], eos_id=1)
            for array, key in zip(got, ("inputs", "targets")):
                assert array.dtype == ex[key].dtype
                np.testing.assert_array_equal(array, ex[key])


@pytest.mark.parametrize("denoiser", ALL_DENOISERS, ids=lambda d: d.name)
def test_same_generator_state_same_example(denoiser):
    window = _windows(1, dn.raw_length(denoiser, 128, 128))[0]
    before = window.copy()
    first = dn.apply(denoiser, window, np.random.default_rng([9, 123]), mode_id=_mode(denoiser), vocab_size=V)
    rng = np.random.default_rng([9, 123])
    state = rng.bit_generator.state
    again = dn.apply(denoiser, window, rng, mode_id=_mode(denoiser), vocab_size=V)
    rng.bit_generator.state = state
    third = dn.apply(denoiser, window, rng, mode_id=_mode(denoiser), vocab_size=V)
    for a, b, c in zip(first, again, third):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(window, before)  # the window (e.g. a memory-mapped cache) is never written
    first[1][...] = 0
    np.testing.assert_array_equal(window, before)  # nor shared with the outputs
    raw = len(window)
    fixed = isinstance(denoiser, dn.CausalLM) or (  # one span: the window's last noise tokens, no choice left
        isinstance(denoiser, dn.SpanCorruption)
        and dn._num_spans(raw, dn._num_noise(raw, denoiser.noise_density), denoiser.mean_span_length,
                          denoiser.num_spans) == 1)
    if not fixed:
        others = {tuple(dn.apply(denoiser, window, np.random.default_rng([9, i]), mode_id=_mode(denoiser),
                                 vocab_size=V)[1]) for i in range(20)}
        assert len(others) > 1, "other seeds give other examples"
