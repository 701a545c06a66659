"""Mixing rates equal their formulas, and a sampled seqio mixture follows its rates."""

from __future__ import annotations

import numpy as np
import pytest

from lowres.data.mixing import rates as mixtures
from lowres.data.mixing.rates import MixingConfig

SIZES = {"eng_Latn": 1_000_000.0, "hin_Deva": 50_000.0, "pan_Guru": 2_000.0, "yor_Latn": 100.0}


def test_temperature_rates_formula():
    for alpha in (0.0, 0.3, 1.0):
        rates = mixtures.temperature_rates(SIZES, alpha)
        denominator = sum(n**alpha for n in SIZES.values())
        for lang, n in SIZES.items():
            assert rates[lang] == pytest.approx(n**alpha / denominator)
    assert mixtures.temperature_rates(SIZES) == mixtures.temperature_rates(SIZES, 0.3)
    with pytest.raises(ValueError, match="alpha"):
        mixtures.temperature_rates(SIZES, 1.5)
    with pytest.raises(ValueError, match="positive"):
        mixtures.temperature_rates({"a": 0})


def test_unimax_walks_smallest_first_with_epoch_cap():
    # Budget 400k, 2 epochs: yor 200 (cap), pan 4k (cap), then 395.8k / 2 = 197.9k each for hin (cap 100k)
    # -> hin 100k, eng gets the rest 295.8k.
    rates = mixtures.unimax_rates(SIZES, budget=400_000, max_epochs=2)
    expected = {"yor_Latn": 200, "pan_Guru": 4_000, "hin_Deva": 100_000, "eng_Latn": 295_800}
    for lang, amount in expected.items():
        assert rates[lang] == pytest.approx(amount / 400_000)
    # A budget below the uniform share of the smallest language: uniform.
    assert set(np.round(list(mixtures.unimax_rates(SIZES, budget=40, max_epochs=1).values()), 9)) == {0.25}
    # A budget beyond every cap: rates follow the caps (each language max_epochs times).
    capped = mixtures.unimax_rates(SIZES, budget=1e9, max_epochs=1)
    total = sum(SIZES.values())
    assert capped == pytest.approx({lang: n / total for lang, n in SIZES.items()})


def test_fixed_weights_and_epoch_caps():
    assert mixtures.fixed_rates({"a": 3, "b": 1}) == {"a": 0.75, "b": 0.25}
    with pytest.raises(ValueError, match="non-negative"):
        mixtures.fixed_rates({"a": -1, "b": 2})
    rates = mixtures.temperature_rates(SIZES, 0.3)
    total = 100_000.0
    capped = mixtures.cap_epochs(rates, SIZES, total, max_epochs=4)
    epochs = mixtures.expected_epochs(capped, SIZES, total)
    assert sum(capped.values()) == pytest.approx(1.0)
    assert max(epochs.values()) <= 4 + 1e-9
    assert epochs["yor_Latn"] == pytest.approx(4) and epochs["pan_Guru"] == pytest.approx(4)
    # The freed mass goes to the uncapped languages in proportion to their rates.
    assert capped["eng_Latn"] / capped["hin_Deva"] == pytest.approx(rates["eng_Latn"] / rates["hin_Deva"])
    # Per-task caps as a mapping; None leaves a task uncapped.
    per_task = mixtures.cap_epochs(rates, SIZES, total, {"eng_Latn": None, "hin_Deva": None, "pan_Guru": 1,
                                                          "yor_Latn": None})
    assert mixtures.expected_epochs(per_task, SIZES, total)["pan_Guru"] == pytest.approx(1)


def test_mixing_config_dispatch():
    assert mixtures.mixing_rates(MixingConfig(alpha=0.5), SIZES) == mixtures.temperature_rates(SIZES, 0.5)
    unimax = MixingConfig(method="unimax", budget=400_000, max_epochs=2)
    assert mixtures.mixing_rates(unimax, SIZES) == mixtures.unimax_rates(SIZES, 400_000, 2)
    fixed = MixingConfig(method="fixed", weights={"en": 1, "hi": 1, "pa": 2, "yo": 0})
    assert mixtures.mixing_rates(fixed, SIZES) == {"eng_Latn": 0.25, "hin_Deva": 0.25, "pan_Guru": 0.5,
                                                    "yor_Latn": 0.0}
    with pytest.raises(ValueError, match="no weight to"):
        mixtures.mixing_rates(MixingConfig(method="fixed", weights={"en": 1}), SIZES)
    with pytest.raises(ValueError, match="budget"):
        MixingConfig(method="unimax")
    with pytest.raises(ValueError, match="method"):
        MixingConfig(method="uniform")
    hash(fixed)  # configs stay hashable (they key caches)


def test_sampled_mixture_shares_match_rates_within_two_points():
    import seqio
    import tensorflow as tf

    rates = mixtures.temperature_rates(SIZES, 0.3)
    vocabulary = seqio.PassThroughVocabulary(size=16)
    features = {"targets": seqio.Feature(vocabulary, add_eos=False)}
    tasks = []
    for token, lang in enumerate(SIZES, start=3):
        name = f"test_mixtures.{lang}"
        seqio.TaskRegistry.remove(name)

        def dataset_fn(split, shuffle_files, seed=None, token=token):
            return tf.data.Dataset.from_tensors({"targets": tf.constant([token], tf.int32)})

        seqio.TaskRegistry.add(name, source=seqio.FunctionDataSource(dataset_fn, splits=["train"]),
                               preprocessors=[], output_features=features)
        tasks.append((name, rates[lang]))
    mixtures.register_mixture("test_mixtures.temperature", tasks)
    dataset = seqio.get_mixture_or_task("test_mixtures.temperature").get_dataset(
        {"targets": 1}, "train", shuffle=False, num_epochs=None, seed=0
    )
    n = 20_000
    batches = dataset.take(n).map(lambda ex: ex["targets"][0]).batch(5_000).as_numpy_iterator()
    first = np.concatenate(list(batches))
    assert first.shape == (n,)
    for token, lang in enumerate(SIZES, start=3):
        assert abs(np.mean(first == token) - rates[lang]) < 0.02, lang


def test_mixing_settings_are_config_errors_and_empty_languages_data_errors():
    from lowres.data.config import MixingConfig as Declared
    from lowres.errors import ConfigError, DataError

    assert MixingConfig is Declared  # declared with the data settings, computed here
    with pytest.raises(ConfigError, match="MixingConfig.method"):
        MixingConfig(method="uniform")
    with pytest.raises(ConfigError, match="alpha"):
        mixtures.temperature_rates({"a": 1.0}, alpha=2.0)
    with pytest.raises(DataError, match="every size must be positive"):
        mixtures.temperature_rates({"a": 0.0})
    with pytest.raises(ConfigError, match="no task with a positive rate"):
        mixtures.register_mixture("test_mixtures.nothing", [("x", 0.0)])
