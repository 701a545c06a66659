"""The index-based training stream: batches as a pure function of (seed, step, host), exact resumes
that produce nothing before the resume step, per-example denoisers, language shares and host shards."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import seqio

from lowres.data.config import DataConfig
from lowres.data.streams import indexed
from lowres.data.streams.components import LanguageExamples, Lengths
from lowres.data.streams.indexed import IndexedStream
from lowres.data.streams.pipeline import training_batches
from lowres.data.streams.sampler import IndexPermutation, MixingSchedule
from lowres.data.tasks import objectives
from lowres.data.tasks.builtin import register_builtin_mixture
from lowres.models.architecture import architecture_for

LANGS = ["pan", "yor", "eng", "swa"]
CONFIG = DataConfig(objective="ul2", inputs_length=64, targets_length=64, batch_size=8, seed=3)
ONE_HOST = seqio.ShardInfo(0, 1)


@pytest.fixture(scope="module")
def ul2(corpus, vocabulary):
    return register_builtin_mixture(corpus, vocabulary, "ul2", 0.3, LANGS)


@pytest.fixture(scope="module")
def stream(ul2):
    return IndexedStream(ul2, CONFIG, ONE_HOST, architecture_for("encoder_decoder").feature_converter(True))


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_every_builtin_task_has_a_plan_and_the_pipeline_takes_the_indexed_path(ul2):
    assert indexed.plans_of(ul2) is not None
    batches = training_batches(ul2, CONFIG, ONE_HOST, 0, architecture_for("encoder_decoder").feature_converter(True))
    assert isinstance(batches, indexed._Prefetched)


@pytest.mark.parametrize("start", [0, 1, 37, 5000])
def test_a_stream_started_at_step_k_is_the_uninterrupted_stream_from_k_and_builds_nothing_before(
        stream, ul2, start, monkeypatch):
    converter = architecture_for("encoder_decoder").feature_converter(True)
    uninterrupted = [stream.batch(step) for step in range(start, start + 3)]
    built = []
    original = IndexedStream.batch
    monkeypatch.setattr(IndexedStream, "batch", lambda self, step: built.append(step) or original(self, step))
    resumed = training_batches(ul2, CONFIG, ONE_HOST, start, converter)
    for expected in uninterrupted:
        _same(next(resumed), expected)
    resumed.close()
    assert min(built) == start, f"the resumed stream built batch {min(built)} before step {start}"


def test_hosts_draw_different_rows_and_each_is_deterministic(ul2, tmp_path):
    converter = architecture_for("encoder_decoder").feature_converter(True)
    hosts = [IndexedStream(ul2, CONFIG, seqio.ShardInfo(h, 2), converter) for h in range(2)]
    a, b = hosts[0].batch(0), hosts[1].batch(0)
    assert a["encoder_input_tokens"].shape[0] == CONFIG.batch_size // 2
    assert not np.array_equal(a["encoder_input_tokens"], b["encoder_input_tokens"])
    _same(hosts[0].batch(7), IndexedStream(ul2, CONFIG, seqio.ShardInfo(0, 2), converter).batch(7))


def test_denoisers_are_chosen_per_example_at_their_rates(stream, ul2):
    entries = objectives.objective("ul2")
    total = sum(rate for _, rate in entries)
    counts = collections.Counter()
    examples = stream.components[0].examples
    assert isinstance(examples, LanguageExamples)
    for j in range(10_000):
        counts[examples.denoiser_of(j)] += 1
    for index, (_, rate) in enumerate(entries):
        assert abs(counts[index] / 10_000 - rate / total) < 0.02, (index, counts)


def test_language_shares_follow_the_mixing_rates(stream, ul2):
    rates = indexed.mixture_rates(ul2)
    rows = collections.Counter()
    for step in range(0, 2500):  # 20k rows of one example each (unpacked-size UL2 examples)
        rows.update(stream.tasks_of(step))
    per_row = {c.task: c.per_row for c in stream.components}
    examples = {task: n * per_row[task] for task, n in rows.items()}
    total = sum(examples.values())
    assert total >= 20_000
    for task, rate in rates.items():
        assert abs(examples[task] / total - rate) < 0.02, (task, examples[task] / total, rate)


def test_an_epoch_of_windows_covers_the_stream_once_with_new_cuts_each_epoch():
    tokens = np.arange(3, 1003, dtype=np.int32)  # 1000 tokens, every id distinct
    denoiser = objectives.CausalLM()
    examples = LanguageExamples(tokens, [(denoiser, 1.0)], key=1, seed=0, lengths=Lengths(8, 33), mode_ids=[None],
                                vocab_size=2000)
    raw = examples.raw[0]
    count = examples.windows(0)
    assert raw == 32 and count == 1000 // 32
    epochs = []
    for epoch in range(2):
        seen = np.concatenate([examples.window(0, epoch * count + k) for k in range(count)])
        assert len(seen) == len(set(seen.tolist())) == count * raw  # no token twice within an epoch
        epochs.append({int(examples.window(0, epoch * count + k)[0]) for k in range(count)})
    assert epochs[0] != epochs[1]  # the grid moves between epochs


def test_index_permutation_is_a_bijection_and_mixing_schedule_is_exact_per_cycle():
    for n in (1, 2, 7, 1000, 4097):
        values = IndexPermutation(n, 11, 5)(np.arange(n))
        assert sorted(values.tolist()) == list(range(n))
    schedule = MixingSchedule([0.7, 0.2, 0.1], seed=4, cycle=1000)
    components, within = schedule.locate_many(0, 3000)
    assert np.bincount(components).tolist() == [2100, 600, 300]
    for c in range(3):  # the k-th draw of a component is its element k
        np.testing.assert_array_equal(within[components == c], np.arange((components == c).sum()))
    assert schedule.locate(2_000_000_017) == tuple(int(x[0]) for x in schedule.locate_many(2_000_000_017, 1))
