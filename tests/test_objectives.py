"""Span corruption and prefix LM: statistics, exact reconstruction and lengths."""

import dataclasses
from pathlib import Path

import gin
import numpy as np
import pytest
import seqio
import tensorflow as tf

from lowres.data.tasks import objectives
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.config import DataConfig
from lowres.data.tasks.registration import output_features


def _stream(num_examples: int, length: int, vocab_size: int = 500) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    docs = rng.integers(3, vocab_size, size=(num_examples, length)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices({"targets": docs})


def _merge(inputs, targets, vocabulary):
    """Rebuilds the original tokens by substituting each sentinel's span from the targets."""
    is_sentinel = lambda t: t >= vocabulary.vocab_size - vocabulary.extra_ids  # noqa: E731
    spans, current = {}, None
    for t in targets:
        if is_sentinel(t):
            current = t
            spans[current] = []
        else:
            spans[current].append(t)
    out = []
    for t in inputs:
        out.extend(spans[t] if is_sentinel(t) else [t])
    return out


@pytest.mark.parametrize("mu,r", [(3, 0.15), (8, 0.5), (64, 0.15)])
def test_noise_mask_statistics(mu, r):
    length, trials = 2048, 200  # long enough that round(noise / mu) quantises little
    masks = objectives.random_spans_noise_masks(np.full(trials, length), r, mu, np.random.default_rng([mu, 1]))
    starts = np.diff(np.pad(masks.astype(int), [(0, 0), (1, 0)]), axis=1) == 1
    assert not masks[:, 0].any(), "every sequence starts with a non-noise span"
    assert abs(masks.mean() - r) < 0.01
    assert abs(masks.sum() / starts.sum() - mu) / mu < 0.1
    single = objectives.random_spans_noise_mask(length, r, mu, np.random.default_rng([mu, 2]))
    assert single.shape == (length,) and single.sum() == round(length * r)


def test_span_corruption_reconstructs_the_original_exactly(vocabulary):
    denoiser = objectives.SpanCorruption(3.0, 0.15, "[NLU]")
    features = output_features(vocabulary)
    raw = _stream(200, 200, vocabulary.vocab_size - vocabulary.extra_ids)
    with seqio.utils.map_seed_manager(42):
        out = objectives.denoise(raw, {"inputs": 128, "targets": 64}, features, denoiser=denoiser)
    raw_length, _ = objectives.span_corruption_lengths(128, 0.15, 3.0, 2)
    originals = np.concatenate([ex["targets"] for ex in raw.as_numpy_iterator()])
    mode_id = vocab_lib.reserved_id(vocabulary, "[NLU]")
    rebuilt, count = [], 0
    for ex in out.as_numpy_iterator():
        assert ex["inputs"][0] == mode_id
        assert len(ex["inputs"]) + 1 <= 128, "inputs plus EOS fit inputs_length"
        rebuilt.extend(_merge(ex["inputs"][1:], ex["targets"], vocabulary))
        count += 1
    assert count == int(np.ceil(len(originals) / raw_length))
    np.testing.assert_array_equal(np.asarray(rebuilt), originals)


def test_length_helper_fills_inputs_exactly_and_checks_targets():
    raw, targets = objectives.span_corruption_lengths(512, 0.15, 3.0)
    assert raw > 512  # span corruption shortens the inputs
    with pytest.raises(ValueError, match="targets_length"):
        objectives.check_targets_length(objectives.SpanCorruption(3.0, 0.5, None), 128, 16)


def test_prefix_lm_splits_once_and_keeps_every_token(vocabulary):
    denoiser = objectives.PrefixLM(0.25, "[S2S]")
    raw = _stream(100, 300, 400)
    with seqio.utils.map_seed_manager(7):
        out = list(
            objectives.denoise(raw, {"inputs": 64, "targets": 64}, output_features(vocabulary), denoiser=denoiser)
            .as_numpy_iterator()
        )
    mode_id = vocab_lib.reserved_id(vocabulary, "[S2S]")
    originals = np.concatenate([ex["targets"] for ex in raw.as_numpy_iterator()])
    joined = np.concatenate([np.concatenate([ex["inputs"][1:], ex["targets"]]) for ex in out])
    np.testing.assert_array_equal(joined, originals)
    lengths = [len(ex["inputs"]) - 1 + len(ex["targets"]) for ex in out[:-1]]
    shares = [len(ex["targets"]) / n for ex, n in zip(out, lengths)]
    assert all(ex["inputs"][0] == mode_id for ex in out)
    # r=0.25: the split lies in [round(0.5 (L-1)), L-1], so targets take at most about half.
    assert all(len(ex["targets"]) <= n - round(0.5 * (n - 1)) for ex, n in zip(out, lengths))
    assert abs(np.mean(shares) - 0.25) < 0.05


def test_causal_lm_keeps_the_chunk_as_targets(vocabulary):
    raw = _stream(20, 100, 400)
    with seqio.utils.map_seed_manager(3):
        out = list(objectives.denoise(raw, {"inputs": 8, "targets": 33}, output_features(vocabulary),
                                      denoiser=objectives.CausalLM()).as_numpy_iterator())
    assert all(len(ex["inputs"]) == 0 and len(ex["targets"]) <= 32 for ex in out)
    originals = np.concatenate([ex["targets"] for ex in raw.as_numpy_iterator()])
    np.testing.assert_array_equal(np.concatenate([ex["targets"] for ex in out]), originals)


def test_presets_have_unique_task_names_and_rates_summing_to_one():
    for name, entries in objectives.OBJECTIVES.items():
        names = [d.name for d, _ in entries]
        assert len(set(names)) == len(names), name
        assert sum(rate for _, rate in entries) == pytest.approx(1.0), name
    ul2 = objectives.objective("ul2")
    assert len(ul2) == 7
    shares = {"[NLU]": 0.0, "[NLG]": 0.0, "[S2S]": 0.0}
    for denoiser, rate in ul2:
        shares[denoiser.mode_token] += rate
    assert shares == pytest.approx({"[NLU]": 0.33, "[NLG]": 0.33, "[S2S]": 0.34})
    with pytest.raises(ValueError, match="unknown objective"):
        objectives.objective("nope")


def _parallel(rows):
    keys = ("src_text", "tgt_text", "src_lang", "tgt_lang", "corpus")
    return tf.data.Dataset.from_tensor_slices({k: [row[i] for row in rows] for i, k in enumerate(keys)})


PAIRS = [("Hello world.", "Ẹ n lẹ́ o.", "eng_Latn", "yor_Latn", "test"),
         ("All human beings are born free.", "Bydd pawb yn rhydd.", "eng_Latn", "cym_Latn", "test")]


@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
def test_translation_tags_the_target_language_with_its_reserved_id(vocabulary, direction):
    translation = objectives.Translation(direction)
    assert translation.name == {"forward": "translate", "backward": "translate_backward",
                                "both": "translate_both"}[direction]
    preprocess = objectives.translation_preprocessor(translation)
    out = list(preprocess(_parallel(PAIRS), output_features(vocabulary), {"inputs": 32, "targets": 32})
               .as_numpy_iterator())
    expected = []
    for src, tgt, src_lang, tgt_lang, _ in PAIRS:
        if direction in ("forward", "both"):
            expected.append((tgt_lang, src, tgt))
        if direction in ("backward", "both"):
            expected.append((src_lang, tgt, src))
    assert len(out) == len(expected)
    for ex, (lang, source, target) in zip(out, expected):
        assert ex["inputs"].dtype == np.int32 and ex["targets"].dtype == np.int32
        assert ex["inputs"][0] == vocab_lib.reserved_id(vocabulary, f"<2{lang}>")
        assert vocabulary.decode(ex["inputs"][1:].tolist()) == source
        assert vocabulary.decode(ex["targets"].tolist()) == target
        assert set(ex) == {"inputs", "targets"}


def test_translation_mode_token_comes_first(vocabulary):
    preprocess = objectives.translation_preprocessor(objectives.Translation("forward", "[S2S]"))
    ex = next(preprocess(_parallel(PAIRS), output_features(vocabulary), {"inputs": 32, "targets": 32})
              .as_numpy_iterator())
    assert list(ex["inputs"][:2]) == [vocab_lib.reserved_id(vocabulary, "[S2S]"),
                                      vocab_lib.reserved_id(vocabulary, "<2yor_Latn>")]


def test_translation_unknown_tag_and_direction_are_clear_errors(vocabulary):
    preprocess = objectives.translation_preprocessor(objectives.Translation())
    bad = _parallel([("a", "b", "eng_Latn", "xyz_Latn", "test")])
    with pytest.raises(tf.errors.InvalidArgumentError, match="no reserved <2lang> tag(.|\n)*xyz_Latn"):
        list(preprocess(bad, output_features(vocabulary), {"inputs": 8, "targets": 8}).as_numpy_iterator())
    with pytest.raises(ValueError, match="Translation.direction"):
        objectives.Translation("sideways")


# ---------------------------------------------------------------------------------------------
# Statistics over 10k examples per denoiser, generated and checked batch-wise (no per-token Python)

V, EXTRA, MODE = 32000, 100, 5  # synthetic vocabulary: tokens in [10, V - EXTRA), sentinels above
NUM_EXAMPLES = 10_000


def _inputs_length_for(denoiser) -> int:
    """The shortest power-of-two inputs length whose span count rounds within 7% of mu (T5 quantises)."""
    for length in (128, 256, 512, 1024, 2048):
        raw, _ = objectives.span_corruption_lengths(length, denoiser.noise_density, denoiser.mean_span_length, 2,
                                                    denoiser.num_spans)
        noise = objectives._num_noise(raw, denoiser.noise_density)
        spans = objectives._num_spans(raw, noise, denoiser.mean_span_length, denoiser.num_spans)
        if denoiser.num_spans or abs(noise / spans - denoiser.mean_span_length) < 0.07 * denoiser.mean_span_length:
            return length
    raise AssertionError(denoiser)


def _corrupted_batches(denoiser, inputs_length, seed=0, batch=2000):
    """(original chunks, inputs, targets) numpy batches for NUM_EXAMPLES full chunks, through the seqio path."""
    raw, _ = objectives.span_corruption_lengths(inputs_length, denoiser.noise_density, denoiser.mean_span_length, 2,
                                                denoiser.num_spans)
    chunks = np.random.default_rng(seed).integers(10, V - EXTRA, size=(NUM_EXAMPLES, raw), dtype=np.int32)
    with seqio.utils.map_seed_manager(seed + 1):
        out = objectives.apply_denoiser(tf.data.Dataset.from_tensor_slices({"targets": chunks}), denoiser, MODE, V)
    for i, ex in enumerate(out.padded_batch(batch).as_numpy_iterator()):
        yield chunks[i * batch:(i + 1) * batch], ex["inputs"], ex["targets"]


def _reconstruct(inputs, targets):
    """Merges inputs and targets through their sentinels, vectorised: each span goes where its sentinel was."""
    is_sentinel_in, is_sentinel_tg = inputs >= V - EXTRA, targets >= V - EXTRA
    is_token_in, is_token_tg = (inputs > 0) & ~is_sentinel_in, (targets > 0) & ~is_sentinel_tg
    # Non-noise run k (after k sentinels) sorts as 2k, the noise span of sentinel k+1 as 2k+1.
    key_in = np.where(is_token_in, 2 * np.cumsum(is_sentinel_in, axis=1), np.iinfo(np.int32).max // 4)
    key_tg = np.where(is_token_tg, 2 * np.cumsum(is_sentinel_tg, axis=1) - 1, np.iinfo(np.int32).max // 4)
    keys = np.concatenate([key_in, key_tg], axis=1).astype(np.int64)
    values = np.concatenate([inputs, targets], axis=1)
    order = np.argsort(keys * values.shape[1] + np.arange(values.shape[1]), axis=1)
    return np.take_along_axis(values, order, axis=1)


def _span_lengths(targets):
    """Lengths of every noise span in a batch of targets (tokens between consecutive sentinels)."""
    is_sentinel = targets >= V - EXTRA
    span_id = np.cumsum(is_sentinel, axis=1) - 1 + (np.arange(len(targets)) * targets.shape[1])[:, None]
    is_token = (targets > 0) & ~is_sentinel
    counts = np.bincount(span_id[is_token], minlength=span_id.max() + 1)
    return counts[np.unique(span_id[is_sentinel])]


STAT_DENOISERS = [d for d, _ in objectives.objective("ul2") if isinstance(d, objectives.SpanCorruption)] + [
    objectives.SpanCorruption(3.0, 0.15, "[NLU]", num_spans=5),
    objectives.SpanCorruption(8.0, 0.5, "[NLG]", span_length_distribution="normal"),
]


@pytest.mark.parametrize("denoiser", STAT_DENOISERS, ids=lambda d: d.name)
def test_span_corruption_statistics_over_10k_examples(denoiser):
    inputs_length = _inputs_length_for(denoiser)
    raw, targets_needed = objectives.span_corruption_lengths(
        inputs_length, denoiser.noise_density, denoiser.mean_span_length, 2, denoiser.num_spans)
    expected_spans = objectives._num_spans(raw, objectives._num_noise(raw, denoiser.noise_density),
                                           denoiser.mean_span_length, denoiser.num_spans)
    noise_total = spans_total = tokens_total = examples = 0
    span_lengths = []
    for originals, inputs, targets in _corrupted_batches(denoiser, inputs_length):
        examples += len(originals)
        # Mode token exactly once, first; never in the targets.
        assert (inputs[:, 0] == MODE).all() and ((inputs == MODE).sum(1) == 1).all() and not (targets == MODE).any()
        body = inputs[:, 1:]
        # Corrupted inputs (+ EOS) never exceed inputs_length and fill it up to one token; targets fit the helper's.
        input_lengths, target_lengths = (inputs > 0).sum(1) + 1, (targets > 0).sum(1) + 1
        assert input_lengths.max() <= inputs_length and input_lengths.min() >= inputs_length - 1
        assert target_lengths.max() <= targets_needed
        # Spans: as specified, each sentinel once in the inputs and once in the targets, in the same order.
        spans = (body >= V - EXTRA).sum(1)
        assert (spans == expected_spans).all()
        assert (spans == (targets >= V - EXTRA).sum(1)).all()
        np.testing.assert_array_equal(body[body >= V - EXTRA], targets[targets >= V - EXTRA])
        assert (body[:, 0] < V - EXTRA).all(), "T5 starts with a non-noise span"
        # Exact reconstruction through the sentinels.
        np.testing.assert_array_equal(_reconstruct(body, targets)[:, :raw], originals)
        noise_total += int(((targets > 0) & (targets < V - EXTRA)).sum())
        spans_total += int(spans.sum())
        tokens_total += originals.size
        span_lengths.append(_span_lengths(targets))
    assert examples == NUM_EXAMPLES
    assert abs(noise_total / tokens_total - denoiser.noise_density) < 0.01
    lengths = np.concatenate(span_lengths)
    assert lengths.min() >= 1 and lengths.sum() == noise_total
    if denoiser.num_spans:
        assert spans_total == denoiser.num_spans * NUM_EXAMPLES
    else:
        assert abs(noise_total / spans_total - denoiser.mean_span_length) < 0.1 * denoiser.mean_span_length
    if denoiser.span_length_distribution == "normal":
        # UL2's normal spans concentrate around mu (std mu/4); T5's uniform partition spreads them (std ~ mu).
        assert abs(lengths.mean() - denoiser.mean_span_length) < 0.1 * denoiser.mean_span_length
        assert 0.5 * denoiser.stddev < lengths.std() < 1.5 * denoiser.stddev
    else:
        assert lengths.std() > 0.5 * noise_total / spans_total - 1


def test_normal_span_lengths_are_less_spread_than_uniform():
    mask_args = (1000, 0.5, 8.0)
    uniform = objectives.random_spans_noise_mask(*mask_args, np.random.default_rng([1, 2]))
    normal = objectives.random_spans_noise_mask(*mask_args, np.random.default_rng([1, 2]),
                                                span_length_distribution="normal")

    def run_lengths(mask):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        return edges[1::2] - edges[::2]

    assert uniform.sum() == normal.sum() == 500
    assert len(run_lengths(uniform)) == len(run_lengths(normal)) == 62
    assert run_lengths(normal).std() < 0.5 * run_lengths(uniform).std()


# ---------------------------------------------------------------------------------------------
# Presets, gin files, mode tokens, lengths

GIN_DIR = Path(__file__).resolve().parents[1] / "gin_configs" / "objectives"


@pytest.fixture
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.parametrize("name", ["ul2", "ul2r", "t5_span_corruption", "causal_lm", "prefix_lm", "custom"])
def test_each_objective_gin_file_selects_its_objective(name, clean_gin):
    gin.parse_config_files_and_bindings([str(GIN_DIR / f"{name}.gin")], [])
    config = DataConfig()
    assert config.objective == name
    entries = objectives.objective(config.objective)
    if name == "custom":
        (r, r_rate), (x, x_rate), (s, s_rate) = entries
        assert (r.mean_span_length, r.noise_density, r.mode_token, r_rate) == (3.0, 0.15, "[NLU]", 0.4)
        assert (x.num_spans, x.span_length_distribution, x.noise_density, x_rate) == (4, "normal", 0.5, 0.2)
        assert isinstance(s, objectives.PrefixLM) and (s.noise_density, s.mode_token) == (0.25, "[S2S]")
    else:
        assert entries == objectives.OBJECTIVES[name]


def test_custom_objective_without_entries_names_the_binding(clean_gin):
    gin.parse_config("DataConfig.objective = 'custom'")
    with pytest.raises(ValueError, match="custom_objective.entries"):
        objectives.objective(DataConfig().objective)


def test_one_gin_binding_switches_mode_tokens_off_and_task_names_stay_unique(clean_gin):
    for name in ("ul2", "ul2r"):
        assert all(d.mode_token for d, _ in objectives.objective(name))
    gin.parse_config("objective.mode_tokens = False")
    for name in ("ul2", "ul2r"):
        entries = objectives.objective(name)
        assert all(d.mode_token is None for d, _ in entries)
        assert len({d.name for d, _ in entries}) == len(entries)
    clash = ((objectives.SpanCorruption(3, 0.15, "[NLU]"), 0.5), (objectives.SpanCorruption(3, 0.15, "[NLG]"), 0.5))
    with pytest.raises(ValueError, match="appear twice"):
        objectives._validated("clash", tuple((dataclasses.replace(d, mode_token=None), r) for d, r in clash))


def test_mode_token_is_a_reserved_id_exactly_once_even_when_the_text_spells_it(vocabulary):
    text = "[NLU] [NLG] [S2S] " * 40
    tokens = tf.constant(vocabulary.encode(text), tf.int32)
    reserved = {vocab_lib.reserved_id(vocabulary, m) for m in vocab_lib.MODE_TOKENS}
    assert not reserved & set(tokens.numpy().tolist()), "plain text never encodes to a mode token"
    raw = tf.data.Dataset.from_tensors({"targets": tokens}).repeat(5)
    for denoiser in (objectives.SpanCorruption(8.0, 0.5, "[NLG]"),):  # every preset: tests/test_pipeline.py
        out = objectives.denoise(raw, {"inputs": 64, "targets": 64}, output_features(vocabulary), denoiser=denoiser)
        mode_id = vocab_lib.reserved_id(vocabulary, denoiser.mode_token)
        for ex in out.as_numpy_iterator():
            assert ex["inputs"][0] == mode_id
            assert sum(int(t in reserved) for t in ex["inputs"]) == 1 and not reserved & set(ex["targets"].tolist())


def test_t5_preset_and_length_helper_match_t5():
    ((denoiser, rate),) = objectives.objective("t5_span_corruption")
    assert (denoiser.mean_span_length, denoiser.noise_density, denoiser.mode_token, rate) == (3.0, 0.15, None, 1.0)
    assert denoiser.span_length_distribution == "uniform" and denoiser.num_spans is None
    # T5's random_spans_helper at inputs_length 512: 568 raw tokens, targets of 114.
    assert objectives.span_corruption_lengths(512, 0.15, 3.0) == (568, 114)
    assert objectives.check_targets_length(denoiser, 512, 114) == 114
    with pytest.raises(ValueError, match=r"DataConfig.targets_length=113; set DataConfig.targets_length >= 114"):
        objectives.check_targets_length(denoiser, 512, 113)
    with pytest.raises(ValueError, match="DataConfig.inputs_length=2 is too short"):
        objectives.span_corruption_lengths(2, 0.15, 3.0)
    # A fixed span count changes the targets needed: 5 sentinels instead of round(85 / 3) = 28.
    raw, targets = objectives.span_corruption_lengths(512, 0.15, 3.0, num_spans=5)
    assert targets == round(raw * 0.15) + 5 + 1 and raw - round(raw * 0.15) + 5 + 1 <= 512


def test_prefix_lm_statistics_over_10k_examples():
    denoiser = objectives.PrefixLM(0.25, "[S2S]")
    length = 200
    rng = np.random.default_rng(0)
    tokens = rng.integers(10, V - EXTRA, size=(NUM_EXAMPLES, length), dtype=np.int32)
    splits = np.array([objectives.random_prefix_split(length, denoiser.noise_density, rng)
                       for _ in range(NUM_EXAMPLES)])
    low = round((1 - 2 * 0.25) * (length - 1))
    assert splits.min() >= low and splits.max() <= length - 1
    assert abs(np.mean(length - splits) / length - 0.25) < 0.01
    chunks = tf.data.Dataset.from_tensor_slices({"targets": tokens})
    with seqio.utils.map_seed_manager(5):
        out = objectives.apply_denoiser(chunks, denoiser, MODE, V)
    batch = next(out.padded_batch(NUM_EXAMPLES).as_numpy_iterator())
    input_lengths = (batch["inputs"] > 0).sum(1)
    assert (batch["inputs"][:, 0] == MODE).all()
    assert abs(np.mean((batch["targets"] > 0).sum(1)) / length - 0.25) < 0.01
    np.testing.assert_array_equal(input_lengths - 1 + (batch["targets"] > 0).sum(1), length)
    rebuilt = np.where(np.arange(length)[None] < (input_lengths - 1)[:, None],
                       np.pad(batch["inputs"][:, 1:], [(0, 0), (0, length)])[:, :length],
                       np.take_along_axis(np.pad(batch["targets"], [(0, 0), (0, length)]),
                                          np.clip(np.arange(length)[None] - (input_lengths - 1)[:, None], 0, None),
                                          axis=1))
    np.testing.assert_array_equal(rebuilt, tokens)


@pytest.mark.parametrize("denoiser", [objectives.SpanCorruption(3.0, 0.5, "[NLG]"),
                                      objectives.SpanCorruption(8.0, 0.5, None, span_length_distribution="normal"),
                                      objectives.PrefixLM(0.25, "[S2S]"), objectives.CausalLM()], ids=lambda d: d.name)
def test_seqio_path_runs_the_numpy_denoiser_per_example(denoiser):
    """The tasks' map function is denoisers.apply, window k of a batch with the generator example_rng(seed, k)."""
    from lowres.data.tasks import denoisers

    mode = MODE if denoiser.mode_token else None
    op = objectives._shared_denoiser(denoiser, mode, V)
    rng = np.random.default_rng(0)
    windows = [rng.integers(10, V - EXTRA, size=length, dtype=np.int32) for length in (2, 17, 140, 140, 3)]
    seed = rng.integers(-2**63, 2**63 - 1, size=2, dtype=np.int64)
    out = op(tf.constant(np.concatenate(windows)), tf.constant([len(w) for w in windows], tf.int64), tf.constant(seed))
    assert out["inputs"].nrows() == out["targets"].nrows() == len(windows)
    for index, window in enumerate(windows):
        expected = denoisers.apply(denoiser, window, objectives.example_rng(seed, index), mode_id=mode, vocab_size=V)
        np.testing.assert_array_equal(out["inputs"][index].numpy(), expected[0])
        np.testing.assert_array_equal(out["targets"][index].numpy(), expected[1])
    # Through seqio's seeds: the same map seed gives the same examples, another seed other ones.
    tokens = rng.integers(10, V - EXTRA, size=(objectives.BATCH_SIZE + 20, 140), dtype=np.int32)  # two batches
    chunks = tf.data.Dataset.from_tensor_slices({"targets": tokens})

    def run(seed):
        with seqio.utils.map_seed_manager(seed):
            return [ex["targets"].tolist() for ex in objectives.apply_denoiser(chunks, denoiser, mode, V)
                    .as_numpy_iterator()]

    assert run(1) == run(1)
    assert isinstance(denoiser, objectives.CausalLM) or run(1) != run(2)


def test_objective_settings_are_config_errors():
    from lowres.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown objective 'nope'"):
        objectives.objective("nope")
    with pytest.raises(ConfigError, match="noise_density"):
        objectives.SpanCorruption(3.0, 1.5)
    with pytest.raises(ConfigError, match="Translation.direction"):
        objectives.Translation(direction="sideways")
