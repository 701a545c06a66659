"""Resuming a batch source (one mixture, a staged schedule with replay, learned LM/MT mixing) at step
0, 1 or k gives bitwise the batches of an uninterrupted source, and builds no batch before step k:
the index-based stream is opened at the resume step, not replayed to it."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import seqio

from lowres.data.config import DataConfig
from lowres.data.streams.indexed import IndexedStream
from lowres.data.streams.learned import LearnedMixingConfig
from lowres.data.streams.schedules import MixtureSchedule, Phase
from lowres.data.tasks.builtin import register_builtin_mixture
from lowres.errors import DataError
from lowres.models.architecture import architecture_for
from lowres.training.batch_sources import MEASURE_SEED_OFFSET, StreamConfig, open_batch_source
from lowres.training.resume import batch_fingerprint

CONFIG = DataConfig(objective="ul2", inputs_length=32, targets_length=32, batch_size=4, seed=5)
ONE_HOST = seqio.ShardInfo(0, 1)
CONVERTER = architecture_for("encoder_decoder").feature_converter(True)


@pytest.fixture(scope="module")
def mixtures(corpus, vocabulary):
    lm = register_builtin_mixture(corpus, vocabulary, "ul2", 0.3, ["eng", "pan", "yor"])
    mt = register_builtin_mixture(corpus, vocabulary, "causal_lm", 0.3, ["eng", "pan", "yor"], translation_rate=0.5)
    return lm, mt


@pytest.fixture
def built(monkeypatch):
    """(mixture, seed, step) of every batch an IndexedStream builds while the test runs."""
    calls = []
    original = IndexedStream.batch
    monkeypatch.setattr(IndexedStream, "batch", lambda self, step: calls.append((self.mixture, self.seed, step))
                        or original(self, step))
    return calls


def _same(a, b, note=""):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key} {note}")


def _source(stream, mixture, start=0, expected=None, saved=None, **kw):
    return open_batch_source(stream, mixture, CONFIG, ONE_HOST, CONVERTER, start_step=start,
                             expected_fingerprint=expected, saved_state=saved, where="test", **kw)


def _rewards(source, step):
    """Deterministic stand-in losses, so the learned sampler's updates are reproducible."""
    fresh = source.measurement_batch(step)
    if fresh is not None:
        source.report(step, 2.0, 2.0 - 0.01 * (step % 3) - 0.02 * (source._task.endswith("translate")))


def _uninterrupted(stream, mixture, steps, **kw):
    source = _source(stream, mixture, **kw)
    batches, states, upcoming = [], {}, {}
    for step in range(steps):
        peeked = source.peek(step)
        upcoming[step] = batch_fingerprint(peeked) if peeked is not None else None
        states[step] = source.state_dict()
        batches.append(source.next(step))
        if stream.kind == "learned":
            _rewards(source, step)
    return batches, states, upcoming


def _resumed(stream, mixture, start, steps, states, upcoming, built, **kw):
    built.clear()
    source = _source(stream, mixture, start, upcoming[start], states[start] if start else None, **kw)
    batches = []
    for step in range(start, steps):
        batches.append(source.next(step))
        if stream.kind == "learned":
            _rewards(source, step)
    return batches


def test_one_mixture_resumes_at_0_1_and_k_without_building_earlier_batches(mixtures, built):
    lm, _ = mixtures
    stream = StreamConfig()
    whole, states, upcoming = _uninterrupted(stream, lm, 14)
    for start in (0, 1, 9):
        resumed = _resumed(stream, lm, start, 14, states, upcoming, built)
        for step, (a, b) in enumerate(zip(resumed, whole[start:]), start):
            _same(a, b, f"resumed at {start}, step {step}")
        assert min(step for _, _, step in built) == start, f"resumed at {start} but built {min(built)}"


def test_schedule_resumes_mid_phase_and_in_a_replay_phase_building_nothing_earlier(mixtures, built):
    lm, _ = mixtures
    schedule = MixtureSchedule([Phase(4, lm, ["eng"]), Phase(5, lm, ["pan"]), Phase(None, lm, ["yor"], replay=0.3)])
    stream = StreamConfig(kind="schedule")
    whole, states, upcoming = _uninterrupted(stream, lm, 13, schedule=schedule)
    for start in (1, 6, 11):  # inside phase 0, mid phase 1, in the replay phase
        resumed = _resumed(stream, lm, start, 13, states, upcoming, built, schedule=schedule)
        for step, (a, b) in enumerate(zip(resumed, whole[start:]), start):
            _same(a, b, f"resumed at {start}, step {step}")
        phase = schedule.phase_index(start)
        offset = start - schedule.boundaries[phase]
        resumed_phase = built[0][0]
        assert built[0][2] == offset, f"resumed at {start} (phase {phase} step {offset}) but first built {built[0]}"
        assert min(step for mixture, _, step in built if mixture == resumed_phase) == offset


def test_learned_mixing_resumes_mid_run_from_its_state_building_nothing_consumed(mixtures, built):
    lm, mt = mixtures
    stream = StreamConfig(kind="learned", learned_tasks=(lm, mt))
    options = dict(learned=LearnedMixingConfig(measure_every=1, beta=0.5))
    whole, states, upcoming = _uninterrupted(stream, lm, 12, **options)
    start = 7
    consumed = states[start]["consumed"]
    assert all(consumed.values()), f"both tasks were drawn before step {start}: {consumed}"
    resumed = _resumed(stream, lm, start, 12, states, upcoming, built, **options)
    for step, (a, b) in enumerate(zip(resumed, whole[start:]), start):
        _same(a, b, f"step {step}")
    first = collections.defaultdict(lambda: 10**9)
    for mixture, seed, step in built:
        first[mixture, seed] = min(first[mixture, seed], step)
    measured = states[start]["measured"]
    for task in (lm, mt):  # each task's training and measurement streams open where they stopped
        assert first[task, CONFIG.seed] == consumed[task], (task, dict(first), consumed)
        if (task, CONFIG.seed + MEASURE_SEED_OFFSET) in first:
            assert first[task, CONFIG.seed + MEASURE_SEED_OFFSET] == measured[task], (task, dict(first), measured)


def test_a_changed_stream_is_caught_by_the_first_batch_fingerprint(mixtures):
    lm, _ = mixtures
    _, _, upcoming = _uninterrupted(StreamConfig(), lm, 4)
    with pytest.raises(DataError, match="opened at step 3 does not match"):
        _source(StreamConfig(), lm, 3, upcoming[2])


def test_a_checkpoint_from_before_next_batch_fingerprints_still_resumes(mixtures, built):
    """Older checkpoints record the last trained batch's fingerprint: the stream is opened one step early,
    that batch checked and dropped, and training continues with the uninterrupted batches."""
    lm, _ = mixtures
    whole, _, upcoming = _uninterrupted(StreamConfig(), lm, 8)
    built.clear()
    source = _source(StreamConfig(), lm, 5, upcoming[4], expect_next=False)  # batch 4: the last one trained
    for step in range(5, 8):
        _same(source.next(step), whole[step], f"step {step}")
    assert min(step for _, _, step in built) == 4  # that one batch is rebuilt, nothing earlier
    with pytest.raises(DataError, match="replayed to step 5 does not match"):
        _source(StreamConfig(), lm, 5, upcoming[3], expect_next=False)
