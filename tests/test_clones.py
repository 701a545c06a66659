"""Cloned languages: disjoint shifted ids except anchors, per-sequence clone probability."""

import itertools

import numpy as np
import pytest
import seqio

from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.mixing.clones import (
    CloneConfig,
    anchor_ids,
    clone_id_map,
    clone_task_name,
    cloned_vocab_size,
    original_ids,
)
from lowres.data.tasks.clone_tasks import register_clone_mixture, register_clone_task
from lowres.data.streams.schedules import register_language_subset
from lowres.data.tasks.builtin import register_builtin_mixture

LENGTHS = {"inputs": 32, "targets": 32}


@pytest.fixture(scope="module")
def task(corpus, vocabulary):
    mixture = register_builtin_mixture(corpus, vocabulary, "r_denoiser", 0.3, ["eng"], shuffle_buffer_size=16)
    (only,) = seqio.get_mixture_or_task(mixture).tasks
    return only.name


def _examples(name):
    dataset = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, "train", shuffle=False, seed=4, num_epochs=1)
    return list(itertools.islice(dataset.as_numpy_iterator(), 500))


def test_clone_ids_are_disjoint_except_anchors(vocabulary):
    size = vocabulary.vocab_size
    processor = vocabulary.tokenizer
    base = anchor_ids(vocabulary)
    for token in ("[NLU]", "<2eng_Latn>"):
        assert vocab_lib.reserved_id(vocabulary, token) in base
    assert {vocabulary.pad_id, vocabulary.eos_id, processor.unk_id(), vocab_lib.sentinel_id(vocabulary, 0)} <= set(base)
    num_base = size - vocabulary.extra_ids
    ordinary = [i for i in range(num_base) if i not in set(base) and not processor.is_byte(i)]

    rare = min(ordinary, key=processor.get_score)
    anchors = anchor_ids(vocabulary, anchor_fraction=0.1, anchor_pieces=[processor.id_to_piece(rare)])
    frequent = sorted(set(anchors) - set(base))
    assert len(frequent) in (round(0.1 * len(ordinary)), round(0.1 * len(ordinary)) + 1)
    assert rare in anchors
    top = max(processor.get_score(i) for i in ordinary if i not in anchors)
    assert min(processor.get_score(i) for i in frequent if i != rare) >= top

    table = clone_id_map(size, anchors, clone_index=2)
    shared = np.isin(np.arange(size), anchors)
    np.testing.assert_array_equal(table[shared], np.arange(size)[shared])
    moved = table[~shared]
    assert moved.min() >= 2 * size and moved.max() < 3 * size == cloned_vocab_size(size, 2)
    assert len(np.unique(table)) == size
    np.testing.assert_array_equal(original_ids(table, size), np.arange(size))
    with pytest.raises(KeyError, match="not in the vocabulary"):
        anchor_ids(vocabulary, anchor_pieces=["no such piece ✗"])


def test_clone_probability_per_sequence(task, vocabulary):
    size = vocabulary.vocab_size
    table = clone_id_map(size, anchor_ids(vocabulary), 1)
    original = _examples(task)
    assert len(original) > 300
    for p, suffix in ((0.0, "p0"), (0.3, "p0p3"), (1.0, "p1")):
        clone = register_clone_task(task, CloneConfig(probability=p))
        assert clone == task.replace(".eng_Latn.", f".eng_Latn_clone1_{suffix}.")
        cloned = _examples(clone)
        assert len(cloned) == len(original)
        flags = []
        for got, ref in zip(cloned, original):
            is_clone = bool((got["targets"] >= size).any() or (got["inputs"] >= size).any())
            want = {k: table[v] if is_clone else v for k, v in ref.items()}
            for key in ("inputs", "targets"):
                np.testing.assert_array_equal(got[key], want[key])
            assert got["targets"][-1] == vocabulary.eos_id
            flags.append(is_clone)
        assert np.mean(flags) == pytest.approx(p, abs=0.08)


def test_clone_mixture_and_bad_config(task):
    mixture = register_clone_mixture(task, CloneConfig(probability=1.0, anchor_fraction=0.05))
    (only,) = seqio.get_mixture_or_task(mixture).tasks
    assert ".eng_Latn_clone1_p1." in only.name
    seqio.MixtureRegistry.remove("test_clones.both")
    both = seqio.MixtureRegistry.add("test_clones.both", [(task, 1.0), (mixture, 1.0)])
    subset = register_language_subset(both.name, ["eng_Latn_clone1_p1"])
    assert [t.name for t in seqio.get_mixture_or_task(subset).tasks] == [only.name]
    with pytest.raises(ValueError, match="probability"):
        CloneConfig(probability=1.5)
    with pytest.raises(ValueError, match="clone_index"):
        CloneConfig(clone_index=0)


def test_clone_settings_are_config_errors():
    from lowres.errors import ConfigError

    with pytest.raises(ConfigError, match="probability"):
        CloneConfig(probability=1.5)
    with pytest.raises(ConfigError, match="not named <corpus>.<lang>.<objective>"):
        clone_task_name("no_dots", CloneConfig())


def test_clones_train_on_the_indexed_stream_with_one_decision_per_example(task, vocabulary):
    from lowres.data.config import DataConfig
    from lowres.data.streams import indexed
    from lowres.data.streams.components import ClonedExamples
    from lowres.models.architecture import architecture_for

    size = vocabulary.vocab_size
    table = clone_id_map(size, anchor_ids(vocabulary), 1)
    mixture = register_clone_mixture(task, CloneConfig(probability=0.3))
    assert indexed.plans_of(mixture) is not None  # not read through seqio
    config = DataConfig(inputs_length=32, targets_length=32, batch_size=8, pack=False, seed=2)
    stream = indexed.IndexedStream(mixture, config, seqio.ShardInfo(0, 1),
                                   architecture_for("encoder_decoder").feature_converter(False))
    (component,) = stream.components
    examples = component.examples
    assert isinstance(examples, ClonedExamples)
    flags = []
    for j in range(1500):
        inputs, targets = examples.example(j)
        original_inputs, original_targets = examples.examples.example(j)
        cloned = examples.is_clone(j)
        np.testing.assert_array_equal(inputs, table[original_inputs] if cloned else original_inputs)
        np.testing.assert_array_equal(targets, table[original_targets] if cloned else original_targets)
        assert cloned == bool((targets >= size).any() or (inputs >= size).any())
        flags.append(cloned)
    assert np.mean(flags) == pytest.approx(0.3, abs=0.03)
    rows = stream.batch(0)["encoder_input_tokens"]  # one example per row, example j = row j at step 0
    for j, row in enumerate(rows):
        assert bool((row >= size).any()) == examples.is_clone(j)
