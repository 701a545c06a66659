"""The learned LM/MT mixing sampler on a constructed case where one task's loss falls faster."""

import json

import numpy as np
import pytest

from lowres.data.streams.learned import (
    LearnedMixingConfig,
    LearnedMixingSampler,
    learned_mixing_step,
    mixing_rates,
    plot_rate_history,
)

DROP = {"lm": 0.01, "mt": 0.05}  # loss reduction per training step on each task


class FakeStreams:
    """Stands in for TaskBatchStreams: a batch only says which task it came from."""

    def __init__(self):
        self.consumed = {t: 0 for t in DROP}

    def next(self, task):
        self.consumed[task] += 1
        return {"task": task}


def train_step(losses, batch):
    return {**losses, batch["task"]: losses[batch["task"]] - DROP[batch["task"]]}


def eval_loss(losses, batch):
    return losses[batch["task"]]


def run(sampler, steps, losses=None):
    losses = losses or {"lm": 10.0, "mt": 10.0}
    chosen = []
    streams, measure = FakeStreams(), FakeStreams()
    for step in steps:
        losses, task = learned_mixing_step(step, losses, sampler, streams, measure, train_step, eval_loss)
        chosen.append(task)
    return chosen, losses


@pytest.mark.parametrize("rule", ["methods", "floor"])
def test_rates_move_toward_the_faster_task_and_respect_the_floor(rule):
    config = LearnedMixingConfig(beta=0.8, epsilon=0.1 if rule == "floor" else 0.005, measure_every=2, rule=rule)
    sampler = LearnedMixingSampler(["lm", "mt"], config)
    assert sampler.rates == {"lm": 0.5, "mt": 0.5}
    chosen, _ = run(sampler, range(400))
    assert sampler.rates["mt"] > 0.7
    assert np.mean([t == "mt" for t in chosen[200:]]) > 0.65
    assert sampler.rewards["mt"] == pytest.approx(0.05, rel=0.05)
    assert len(sampler.history) == 200 and {h["task"] for h in sampler.history} == {"lm", "mt"}
    for record in sampler.history:
        floor = config.epsilon if rule == "floor" else config.epsilon / sum(
            max(config.epsilon, r) for r in record["ema"].values()
        )
        assert min(record["rates"].values()) >= floor - 1e-12
        assert min(record["rates"].values()) > 0.004


def test_negative_rewards_keep_the_floor():
    rates = mixing_rates({"lm": -3.0, "mt": 2.0}, epsilon=0.1, rule="floor")
    assert rates == pytest.approx({"lm": 0.1, "mt": 0.9})
    rates = mixing_rates({"lm": -3.0, "mt": 0.3}, epsilon=0.1, rule="methods")
    assert rates == pytest.approx({"lm": 0.25, "mt": 0.75})
    assert mixing_rates({"a": 0.0, "b": 0.0, "c": 0.0}, 0.2, "floor") == pytest.approx({k: 1 / 3 for k in "abc"})
    with pytest.raises(ValueError, match="no mass"):
        mixing_rates({"a": 1.0, "b": 1.0}, 0.6, "floor")


def test_deterministic_given_the_seed_and_resumable_from_state(tmp_path):
    config = LearnedMixingConfig(beta=0.5, epsilon=0.05, measure_every=3, seed=11)
    full, losses_full = run(LearnedMixingSampler(["lm", "mt"], config), range(60))
    again, _ = run(LearnedMixingSampler(["lm", "mt"], config), range(60))
    other, _ = run(LearnedMixingSampler(["lm", "mt"], LearnedMixingConfig(seed=12, measure_every=3)), range(60))
    assert full == again and full != other

    first = LearnedMixingSampler(["lm", "mt"], config)
    head, losses = run(first, range(30))
    first.save(tmp_path / "mix.json")
    state = json.loads((tmp_path / "mix.json").read_text())
    restored = LearnedMixingSampler.load(tmp_path / "mix.json")
    assert restored.state_dict() == first.state_dict() == state
    tail, losses_end = run(restored, range(30, 60), losses)
    assert head + tail == full and losses_end == losses_full
    assert restored.metrics()["mixing_rate/mt"] == pytest.approx(restored.rates["mt"])


def test_plot_and_bad_input(tmp_path):
    sampler = LearnedMixingSampler(["lm", "mt"], LearnedMixingConfig(measure_every=1))
    run(sampler, range(20))
    path = plot_rate_history(sampler.history, tmp_path / "plots" / "rates.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="empty"):
        plot_rate_history([], tmp_path / "x.png")
    with pytest.raises(KeyError, match="unknown task"):
        sampler.update("xx", 1.0, 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        sampler.update("lm", float("nan"), 0.5)
    with pytest.raises(ValueError, match="beta"):
        LearnedMixingConfig(beta=1.0)
    with pytest.raises(ValueError, match="rule"):
        LearnedMixingConfig(rule="max")


def test_settings_errors_and_atomic_state_files(tmp_path):
    import os
    import stat

    from lowres.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="beta"):
        LearnedMixingConfig(beta=1.0)
    with pytest.raises(ConfigError, match="distinct task names"):
        LearnedMixingSampler(["lm", "lm"])
    sampler = LearnedMixingSampler(["lm", "mt"], LearnedMixingConfig(measure_every=1))
    with pytest.raises(DataError, match="non-finite"):
        sampler.update("lm", float("inf"), 0.5)
    path = tmp_path / "state" / "mixing.json"
    sampler.save(path)
    umask = os.umask(0)
    os.umask(umask)
    # lowres.files.write_atomic: the usual mode for new files (a private temporary file kept 0600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["mixing.json"]  # no temporary file left behind
    assert LearnedMixingSampler.load(path).state_dict() == sampler.state_dict()
    path.write_text("{torn", encoding="utf-8")
    with pytest.raises(DataError, match=r"mixing\.json is not valid JSON"):
        LearnedMixingSampler.load(path)
