"""Span corruption and prefix LM: statistics, exact reconstruction and lengths."""

import numpy as np
import pytest
import seqio
import tensorflow as tf

from lowres.data import objectives
from lowres.data import vocab as vocab_lib
from lowres.data.tasks import output_features


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
    densities, span_lengths = [], []
    for i in range(trials):
        mask = objectives.random_spans_noise_mask(length, r, mu, tf.constant([[i, 1], [i, 2]])).numpy()
        densities.append(mask.mean())
        starts = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int)])) == 1)
        span_lengths.append(mask.sum() / len(starts))
        assert not mask[0], "the sequence starts with a non-noise span"
    assert abs(np.mean(densities) - r) < 0.01
    assert abs(np.mean(span_lengths) - mu) / mu < 0.1


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
