"""SeqIO tasks and the language mixture over the built-in corpus."""

import numpy as np
import pytest
import seqio

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.mixing.rates import temperature_rates
from lowres.data.tasks.builtin import register_builtin_mixture

LENGTHS = {"inputs": 64, "targets": 64}


@pytest.fixture(scope="module")
def mixture(corpus, vocabulary):
    return register_builtin_mixture(corpus, vocabulary, "r_and_s", 0.3, ["pan", "yor_Latn", "eng"])


def test_tasks_produce_well_formed_examples(mixture, vocabulary):
    mix = seqio.get_mixture_or_task(mixture)
    langs = ("pan_Guru", "yor_Latn", "eng_Latn")
    # One task per language (its denoiser chosen per example), plus a view per denoiser to inspect.
    assert sorted(t.name for t in mix.tasks) == sorted(f"builtin.{lang}.r_and_s" for lang in langs)
    views = [seqio.get_mixture_or_task(f"builtin.{lang}.{d}") for lang in langs
             for d in ("span_3_0p15_nlu", "prefix_0p5_s2s")]
    nlu, s2s = (vocab_lib.reserved_id(vocabulary, t) for t in ("[NLU]", "[S2S]"))
    sentinel_floor = vocabulary.vocab_size - vocabulary.extra_ids
    for task in views:
        examples = list(task.get_dataset(LENGTHS, "validation", shuffle=False, seed=0).as_numpy_iterator())
        assert examples, task.name
        for ex in examples:
            inputs, targets = ex["inputs"], ex["targets"]
            assert 2 <= len(inputs) <= LENGTHS["inputs"] and 1 <= len(targets) <= LENGTHS["targets"]
            assert inputs[-1] == vocabulary.eos_id and targets[-1] == vocabulary.eos_id
            if "span" in task.name:
                assert inputs[0] == nlu and (inputs[1:] == nlu).sum() == 0
                assert (inputs >= sentinel_floor).sum() == (targets >= sentinel_floor).sum() >= 1
            else:
                assert inputs[0] == s2s and (targets >= sentinel_floor).sum() == 0


def test_packed_batches_carry_segments_and_loss_weights(mixture):
    dataset = seqio.get_dataset(mixture, task_feature_lengths=LENGTHS, dataset_split="train", shuffle=True,
                                seed=1, num_epochs=1,
                                feature_converter=seqio.EncDecFeatureConverter(pack=True))
    batch = next(dataset.batch(4).as_numpy_iterator())
    assert batch["encoder_input_tokens"].shape == (4, 64)
    for side in ("encoder", "decoder"):
        segments, positions = batch[f"{side}_segment_ids"], batch[f"{side}_positions"]
        starts = np.concatenate([np.ones((4, 1), bool), segments[:, 1:] != segments[:, :-1]], axis=1)
        # positions restart at 0 exactly where a segment starts (padding carries segment 0)
        np.testing.assert_array_equal((positions == 0) & (segments > 0), starts & (segments > 0))
    np.testing.assert_array_equal(batch["decoder_loss_weights"] > 0, batch["decoder_target_tokens"] > 0)


def test_languages_share_one_trace_per_denoiser_and_cache_their_tokens(mixture, vocabulary):
    """Every language's task reuses one traced denoiser op (tracing per task made the 140-task UL2
    mixture take minutes to build) and keeps its token ids in memory before seqio repeats them."""
    from lowres.data.tasks import objectives

    for lang in ("pan_Guru", "yor_Latn"):
        seqio.get_mixture_or_task(f"builtin.{lang}.span_3_0p15_nlu").get_dataset(LENGTHS, "train", shuffle=False)
    denoiser = objectives.objective("r_and_s")[0][0]
    nlu = vocab_lib.reserved_id(vocabulary, "[NLU]")
    assert objectives._shared_corrupt_spans(denoiser, nlu, vocabulary.vocab_size).experimental_get_tracing_count() == 1
    mix = seqio.get_mixture_or_task(mixture)
    assert all(task.supports_caching for task in mix.tasks)
    # The per-language tasks mix both denoisers: their examples carry both mode tokens.
    examples = list(seqio.get_mixture_or_task("builtin.yor_Latn.r_and_s").get_dataset(
        LENGTHS, "train", shuffle=False, seed=0).as_numpy_iterator())
    s2s = vocab_lib.reserved_id(vocabulary, "[S2S]")
    assert {int(ex["inputs"][0]) for ex in examples} == {nlu, s2s}


def test_mixture_rates_follow_temperature_sampling(mixture, corpus):
    mix = seqio.get_mixture_or_task(mixture)
    sizes = {row["lang"]: row["bytes"] for row in corpus.describe() if row["split"] == "train"}
    expected = temperature_rates({k: sizes[k] for k in ("pan_Guru", "yor_Latn", "eng_Latn")}, 0.3)
    for lang, rate in expected.items():
        got = sum(mix.get_rate(t) for t in mix.tasks if f".{lang}." in t.name) / mix.total_rate
        assert got == pytest.approx(rate)


def test_temperature_rates_formula():
    rates = temperature_rates({"a": 1000.0, "b": 10.0}, alpha=0.5)
    assert rates["a"] / rates["b"] == pytest.approx(10.0)
    assert temperature_rates({"a": 1000.0, "b": 10.0}, alpha=0.0) == {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="alpha"):
        temperature_rates({"a": 1.0}, alpha=2.0)


def test_task_names_come_from_one_module_and_read_back(mixture):
    from lowres.data.tasks.names import mixture_name, pair_task_name, task_language, task_name

    assert task_name("builtin", "pan_Guru", "causal") == "builtin.pan_Guru.causal"
    assert pair_task_name("flores200", "eng_Latn", "pan_Guru", "translate") == "flores200.eng_Latn_to_pan_Guru.translate"
    assert mixture_name("builtin", "r_and_s") == mixture == "builtin.r_and_s"
    assert task_language(task_name("c", "yor_Latn", "x")) == "yor_Latn"
    assert task_language(pair_task_name("c", "eng_Latn", "pan_Guru", "translate")) == "eng_Latn_to_pan_Guru"
    assert task_language(mixture_name("c", "r_and_s")) == ""
    registered = {t.name for t in seqio.get_mixture_or_task(mixture).tasks}
    assert task_name("builtin", "pan_Guru", "r_and_s") in registered
    assert task_name("builtin", "pan_Guru", "span_3_0p15_nlu") in seqio.TaskRegistry.names()  # a denoiser's view
    assert {task_language(name) for name in registered} == {"pan_Guru", "yor_Latn", "eng_Latn"}
