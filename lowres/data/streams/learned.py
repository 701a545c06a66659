"""Learned LM/MT mixing (METHODS §3): a bandit over tasks rewarded by the loss reduction a step brings.

After a training step on task k, reward = L_k(before) - L_k(after), both measured on the same
fresh batch of k (not trained on); R_k <- beta R_k + (1 - beta) reward; the next tasks are drawn
with p_k = max(eps, R_k+) / sum_j max(eps, R_j+) (METHODS' rule) or, with `rule="floor"`,
p_k = eps + (1 - K eps) R_k+ / sum_j R_j+ (every task keeps at least eps whatever the reward scale).

Trainer loop (see `learned_mixing_step`, which does exactly this)::

    task = sampler.choose(step)
    batch = streams.next(task)                      # mixture_schedules.TaskBatchStreams
    if sampler.needs_measurement(step):
        fresh = measure_streams.next(task)          # a second TaskBatchStreams with another seed
        before = eval_loss(state, fresh); state = train_step(state, batch)
        sampler.update(task, before, eval_loss(state, fresh), step=step)
    else:
        state = train_step(state, batch)

Checkpoint `sampler.state_dict()` and both streams' `state_dict()` (all JSON) with the model.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gin
import numpy as np

from lowres.data.streams.schedules import Batch, TaskBatchStreams, sample_task
from lowres.config_fields import at_least, between, greater_than, one_of, validated
from lowres.errors import ConfigError, DataError
from lowres.figures import save_png
from lowres.files import read_json, write_json

RULES = ("methods", "floor")
State = TypeVar("State")


@gin.configurable
@validated(beta=between(0.0, 1.0, high_open=True), epsilon=greater_than(0.0), measure_every=at_least(1),
           rule=one_of(*RULES), seed=at_least(0))  # fmt: skip
@dataclasses.dataclass(frozen=True)
class LearnedMixingConfig:
    """Bandit settings: EMA decay `beta`, exploration `epsilon`, a measurement every `measure_every` steps.

    Under rule "methods" `epsilon` is a reward (loss reduction in nats per step): tasks averaging
    less count as `epsilon`, so it must sit below typical rewards or the mixture stays uniform.
    Under rule "floor" it is the minimum probability of every task.
    """

    beta: float = 0.9
    epsilon: float = 0.01
    measure_every: int = 10
    rule: str = "methods"
    seed: int = 0


def mixing_rates(rewards: Mapping[str, float], epsilon: float, rule: str = "methods") -> dict[str, float]:
    """Sampling probabilities from averaged rewards (negative rewards count as 0)."""
    names = list(rewards)
    positive = np.maximum(np.array([rewards[n] for n in names], dtype=np.float64), 0.0)
    if rule == "methods":
        weights = np.maximum(positive, epsilon)
        probs = weights / weights.sum()
    elif rule == "floor":
        if epsilon * len(names) > 1.0:
            raise ConfigError(f"epsilon={epsilon} leaves no mass for {len(names)} tasks (needs epsilon <= 1/{len(names)})")
        share = positive / positive.sum() if positive.sum() > 0 else np.full(len(names), 1.0 / len(names))
        probs = epsilon + (1.0 - epsilon * len(names)) * share
    else:
        raise ConfigError(f"unknown mixing rule {rule!r}; choose one of {RULES}")
    return {n: float(p) for n, p in zip(names, probs)}


class LearnedMixingSampler:
    """Chooses the task of each step and learns the rates from the rewards the trainer reports.

    `choose(step)` is a pure function of (seed, step, current rates), so restoring `state_dict()`
    from a checkpoint at step k reproduces every later choice given the same measured losses.
    """

    def __init__(self, tasks: Sequence[str], config: LearnedMixingConfig | None = None):
        if len(set(tasks)) != len(tasks) or not tasks:
            raise ConfigError(f"LearnedMixingSampler needs distinct task names, got {list(tasks)}")
        self.config = config or LearnedMixingConfig()
        self.tasks = tuple(tasks)
        self.rewards = {t: 0.0 for t in self.tasks}
        self.num_updates = {t: 0 for t in self.tasks}
        self.history: list[dict[str, Any]] = []
        self._last_step = 0

    @property
    def rates(self) -> dict[str, float]:
        return mixing_rates(self.rewards, self.config.epsilon, self.config.rule)

    def choose(self, step: int) -> str:
        self._last_step = step
        return sample_task(self.rates, self.config.seed, step)

    def needs_measurement(self, step: int) -> bool:
        return step % self.config.measure_every == 0

    def update(self, task: str, loss_before: float, loss_after: float, step: int | None = None) -> None:
        """Folds the reward loss_before - loss_after of a step on `task` into its moving average."""
        if task not in self.rewards:
            raise KeyError(f"unknown task {task!r}; the sampler mixes {list(self.tasks)}")
        reward = float(loss_before) - float(loss_after)
        if not np.isfinite(reward):
            raise DataError(f"non-finite reward for {task!r}: loss {loss_before} -> {loss_after}")
        beta = self.config.beta
        self.rewards[task] = beta * self.rewards[task] + (1.0 - beta) * reward
        self.num_updates[task] += 1
        self.history.append(
            {
                "step": self._last_step if step is None else int(step),
                "task": task,
                "reward": reward,
                "ema": dict(self.rewards),
                "rates": self.rates,
            }
        )

    def metrics(self) -> dict[str, float]:
        """Flat scalars for the metrics log (and `lowres plot`): `mixing_rate/<task>`, `mixing_reward/<task>`."""
        rates = self.rates
        out = {f"mixing_rate/{t}": rates[t] for t in self.tasks}
        out.update({f"mixing_reward/{t}": self.rewards[t] for t in self.tasks})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.config),
            "tasks": list(self.tasks),
            "rewards": dict(self.rewards),
            "num_updates": dict(self.num_updates),
            "history": list(self.history),
            "last_step": self._last_step,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> LearnedMixingSampler:
        sampler = cls(state["tasks"], LearnedMixingConfig(**state["config"]))
        sampler.rewards = {t: float(state["rewards"][t]) for t in sampler.tasks}
        sampler.num_updates = {t: int(state["num_updates"][t]) for t in sampler.tasks}
        sampler.history = [dict(h) for h in state["history"]]
        sampler._last_step = int(state["last_step"])
        return sampler

    def save(self, path: str | os.PathLike) -> None:
        """Writes the state as JSON atomically (a crash never leaves a half-written file)."""
        write_json(path, self.state_dict(), indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LearnedMixingSampler:
        return cls.from_state_dict(read_json(path, "learned mixing state"))


def learned_mixing_step(
    step: int,
    state: State,
    sampler: LearnedMixingSampler,
    streams: TaskBatchStreams,
    measure_streams: TaskBatchStreams,
    train_step: Callable[[State, Batch], State],
    eval_loss: Callable[[State, Batch], float],
) -> tuple[State, str]:
    """One training step under the learned mixture; returns the new state and the task trained on."""
    task = sampler.choose(step)
    batch = streams.next(task)
    if not sampler.needs_measurement(step):
        return train_step(state, batch), task
    fresh = measure_streams.next(task)
    before = eval_loss(state, fresh)
    state = train_step(state, batch)
    sampler.update(task, before, eval_loss(state, fresh), step=step)
    return state, task


def plot_rate_history(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Saves the sampling rate of every task against the step as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise DataError("the rate history is empty: no measurement was recorded yet")
    path = Path(path)
    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for task in history[0]["rates"]:
        ax.plot(steps, [h["rates"][task] for h in history], label=task)
    ax.set(xlabel="step", ylabel="sampling rate", ylim=(0, 1), title="learned mixing rates")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return save_png(fig, path, dpi=100)

