"""Staged mixture schedules with replay, and per-task streams with rates changed while training."""

import itertools

import gin
import numpy as np
import pytest
import seqio

from lowres.data.streams.schedules import (
    AdjustableMixture,
    MixtureSchedule,
    Phase,
    TaskBatchStreams,
    phase_config,
    register_language_subset,
    register_replay_mixture,
    resolve_schedule,
    sample_task,
    scheduled_batches,
)
from lowres.data.config import DataConfig
from lowres.data.streams.pipeline import training_batches
from lowres.data.tasks.builtin import register_builtin_mixture

# Unpacked: the stream contract does not depend on packing, and packing doubles pipeline build time.
CONFIG = DataConfig(inputs_length=32, targets_length=32, batch_size=2, pack=False, seed=3)
ONE_HOST = seqio.ShardInfo(0, 1)
GURMUKHI = range(0x0A00, 0x0A80)


@pytest.fixture(scope="module")
def mixture(corpus, vocabulary):
    return register_builtin_mixture(corpus, vocabulary, "r_denoiser", 0.3, ["eng", "pan"], shuffle_buffer_size=16)


def _is_punjabi(ids, vocabulary) -> bool:
    processor = vocabulary.tokenizer
    text = processor.decode_ids([int(i) for i in ids if 0 < i < processor.get_piece_size()])
    return any(ord(c) in GURMUKHI for c in text)


def _take(stream, n):
    return list(itertools.islice(stream, n))


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_schedule_switches_at_the_boundary_and_resumes_identically(mixture, vocabulary):
    schedule = MixtureSchedule([Phase(3, mixture, ["eng"]), (None, f"{mixture}.only_pan_Guru")])
    assert schedule.boundaries == (0, 3) and [schedule.phase_index(s) for s in (0, 2, 3, 100)] == [0, 0, 1, 1]
    register_language_subset(mixture, ["pan"])
    full = _take(scheduled_batches(schedule, CONFIG, ONE_HOST), 6)
    languages = [_is_punjabi(b["encoder_input_tokens"].ravel(), vocabulary) for b in full]
    assert languages == [False] * 3 + [True] * 3
    # Phase 1 is the pan mixture's own stream from its step 0, shuffled with the phase's seed.
    _, pan = resolve_schedule(schedule)
    _assert_same(full[3:], _take(training_batches(pan, phase_config(CONFIG, 1), ONE_HOST), 3))
    # A restart inside phase 0 crosses the boundary exactly as the uninterrupted run did.
    _assert_same(_take(scheduled_batches(schedule, CONFIG, ONE_HOST, start_step=2), 4), full[2:])


def test_language_subset_keeps_rates(mixture):
    parent = seqio.get_mixture_or_task(mixture)
    subset = seqio.get_mixture_or_task(register_language_subset(mixture, ["pa"]))
    assert {t.name for t in subset.tasks} == {t.name for t in parent.tasks if ".pan_Guru." in t.name}
    for task in subset.tasks:
        assert subset.get_rate(task) == pytest.approx(parent.get_rate(task))
    with pytest.raises(ValueError, match="no tasks for languages"):
        register_language_subset(mixture, ["yor"])


def test_replay_share_is_close_to_the_fraction(mixture, vocabulary):
    schedule = MixtureSchedule([Phase(10, mixture, ["eng"]), Phase(None, mixture, ["pan"], replay=0.2)])
    _, replay = resolve_schedule(schedule)
    mix = seqio.get_mixture_or_task(replay)
    eng_rate = sum(mix.get_rate(t) for t in mix.tasks if ".eng_Latn." in t.name) / mix.total_rate
    assert eng_rate == pytest.approx(0.2)
    dataset = mix.get_dataset({"inputs": 32, "targets": 32}, "train", shuffle=True, seed=0, num_epochs=None)
    examples = _take(dataset.as_numpy_iterator(), 1000)
    share = np.mean([not _is_punjabi(np.concatenate([e["inputs"], e["targets"]]), vocabulary) for e in examples])
    assert share == pytest.approx(0.2, abs=0.04)


def test_schedule_rejects_bad_phases(mixture):
    with pytest.raises(ValueError, match=r"phases\[0\]: only the last"):
        MixtureSchedule([(None, mixture), (5, mixture)])
    with pytest.raises(ValueError, match="first phase has no earlier data"):
        MixtureSchedule([Phase(5, mixture, replay=0.1)])
    with pytest.raises(ValueError, match=r"replay=1.5"):
        MixtureSchedule([(5, mixture), Phase(None, mixture, replay=1.5)])
    with pytest.raises(ValueError, match="replay fraction"):
        register_replay_mixture(mixture, mixture, 0.0)


def test_gin_schedules_parse(corpus, vocabulary):
    from pathlib import Path

    from lowres.data.streams.learned import LearnedMixingConfig
    from lowres.training.batch_sources import StreamConfig

    mixture = register_builtin_mixture(corpus, vocabulary, "r_and_s", 0.3, ["eng", "pan"], shuffle_buffer_size=16)
    paths = sorted(Path(__file__).parent.parent.glob("gin_configs/schedules/*.gin"))
    assert len(paths) >= 3
    for path in paths:
        with gin.unlock_config():
            gin.clear_config()
            gin.parse_config_file(str(path))
            if "MixtureSchedule" in path.read_text():
                schedule = MixtureSchedule()
                assert len(schedule.phases) > 1 and all(p.mixture == mixture for p in schedule.phases), path
                resolve_schedule(schedule)
                assert StreamConfig().kind == "schedule", path
            else:
                assert LearnedMixingConfig().measure_every == 10, path
                assert StreamConfig().kind == "learned" and len(StreamConfig().learned_tasks) == 2, path
        gin.clear_config()


def test_sample_task_is_stateless_and_follows_rates():
    rates = {"lm": 0.8, "mt": 0.2}
    draws = [sample_task(rates, 7, step) for step in range(2000)]
    assert draws[:100] == [sample_task(rates, 7, step) for step in range(100)]
    assert np.mean([d == "mt" for d in draws]) == pytest.approx(0.2, abs=0.03)
    assert draws[:100] != [sample_task(rates, 8, step) for step in range(100)]
    with pytest.raises(ValueError, match="non-negative"):
        sample_task({"lm": 0.0}, 0, 0)


def test_adjustable_mixture_resumes_from_recorded_state(mixture):
    eng = register_language_subset(mixture, ["eng"])
    pan = register_language_subset(mixture, ["pan"])
    # After the restart only pan is drawn, so the resumed run builds one stream (pipelines are slow to build).
    rate_updates = {0: {eng: 0.5, pan: 0.5}, 3: {eng: 0.0, pan: 1.0}}

    def run(mix, steps):
        out = []
        for step in steps:
            if step in rate_updates:
                mix.set_rates(rate_updates[step])
            out.append(mix.batch(step))
        return out

    first = AdjustableMixture(TaskBatchStreams([eng, pan], CONFIG, ONE_HOST), rate_updates[0], seed=5)
    head = run(first, range(3))
    state = first.state_dict()
    tail = run(first, range(3, 6))
    assert sum(state["consumed"].values()) == 3 and state["consumed"][pan] > 0
    resumed = AdjustableMixture.from_state_dict(state, CONFIG, ONE_HOST)
    again = run(resumed, range(3, 6))
    assert [t for t, _ in again] == [t for t, _ in tail]
    _assert_same([b for _, b in again], [b for _, b in tail])
    assert [t for t, _ in head + tail] == [sample_task(first.rates if s >= 3 else rate_updates[0], 5, s)
                                          for s in range(6)]
    with pytest.raises(ValueError, match="rates name"):
        first.set_rates({eng: 1.0})


def test_schedule_settings_are_config_errors(mixture):
    from lowres.errors import ConfigError

    with pytest.raises(ConfigError, match="phases is empty"):
        MixtureSchedule([])
    with pytest.raises(ConfigError, match="has no tasks for languages"):
        register_language_subset(mixture, ["zul"])
    with pytest.raises(ConfigError, match="replay fraction"):
        register_replay_mixture(mixture, mixture, 1.0)
