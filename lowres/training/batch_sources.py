"""Where each training step's batch comes from: one mixture, a staged schedule, or a learned mix.

The trainer asks a source for the host-local batch of step k, in order. `state_dict()` is stored
with every checkpoint, and a source rebuilt from it (plus the step) continues with exactly the
batches the uninterrupted run would have drawn. A learned source also asks the trainer to measure
the loss on a fresh batch before and after some steps (`measurement_batch` / `report`), which is
the reward of METHODS §3's LM/MT bandit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import gin
import numpy as np
import seqio

from lowres.data.streams.learned import LearnedMixingConfig, LearnedMixingSampler
from lowres.data.streams.schedules import MixtureSchedule, TaskBatchStreams, scheduled_batches
from lowres.data.config import DataConfig
from lowres.data.streams.pipeline import training_batches
from lowres.training import resume
from lowres.config_fields import one_of, validated
from lowres.errors import ConfigError

Batch = dict[str, np.ndarray]
STREAM_KINDS = ("mixture", "schedule", "learned")
# Measurement batches come from their own streams, shuffled with this offset added to the data seed,
# so they are never the batches the step trains on.
MEASURE_SEED_OFFSET = 7919


@gin.configurable
@validated(kind=one_of(*STREAM_KINDS))
@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """How steps draw their batches.

    "mixture": the run's mixture (DataConfig). "schedule": the phases of the gin-bound
    `MixtureSchedule` (staged training, replay). "learned": `LearnedMixingConfig`'s bandit picks
    one of `learned_tasks` (registered task or mixture names, e.g. an LM and an MT mixture) per step.
    """

    kind: str = "mixture"
    learned_tasks: Sequence[str] = ()

    def __post_init__(self):
        if self.kind == "learned" and len(set(self.learned_tasks)) < 2:
            raise ConfigError(
                f"StreamConfig.learned_tasks={list(self.learned_tasks)!r}: learned mixing needs at least two "
                "distinct task or mixture names, e.g. ['builtin.r_and_s', 'builtin.translate']"
            )
        object.__setattr__(self, "learned_tasks", tuple(self.learned_tasks))


class StreamBatches:
    """A deterministic stream indexed by step (one mixture or a schedule of phases).

    A checkpoint saved after step k records the fingerprint of batch k (the one the run would train
    on next, `peek(k)`); resuming opens the stream at step k and checks its first batch against it,
    so a changed pipeline is caught before training on and no earlier batch is ever built.
    Checkpoints written before that field existed record batch k - 1 instead: the stream is then
    opened one step early and that batch checked (`expect_next=False`).
    """

    def __init__(self, open_stream, start_step: int, expected: str | None, where: str,
                 schedule: MixtureSchedule | None = None, expect_next: bool = True):
        self._schedule = schedule
        self._peeked: Batch | None = None
        if start_step and not expect_next:
            self._stream = resume.replay_to(open_stream(start_step - 1), expected, start_step, where)
        else:
            self._stream = open_stream(start_step)
            self._peeked = next(self._stream)  # pays the pipeline's start-up cost now
            if start_step:
                resume.check_first(self._peeked, expected, start_step, where)

    def next(self, step: int) -> Batch:
        if self._peeked is not None:
            batch, self._peeked = self._peeked, None
            return batch
        return next(self._stream)

    def peek(self, step: int) -> Batch | None:
        """The batch `next(step)` will return, built now and kept for it."""
        if self._peeked is None:
            self._peeked = next(self._stream)
        return self._peeked

    def measurement_batch(self, step: int) -> Batch | None:
        return None

    def report(self, step: int, loss_before: float, loss_after: float) -> None:
        raise RuntimeError("a fixed stream takes no rewards")

    def metrics(self, step: int) -> dict[str, float]:
        return {"phase": self._schedule.phase_index(step - 1)} if self._schedule else {}

    def state_dict(self) -> dict[str, Any]:
        return {}


class LearnedBatches:
    """Per-task streams mixed by a `LearnedMixingSampler` whose rewards the trainer reports."""

    def __init__(self, tasks: Sequence[str], config: LearnedMixingConfig, data_config: DataConfig,
                 shard_info: seqio.ShardInfo, converter: seqio.FeatureConverter, saved: Mapping[str, Any] | None = None):
        saved = saved or {}
        if saved:
            self.sampler = LearnedMixingSampler.from_state_dict(saved["sampler"])
            if self.sampler.tasks != tuple(tasks):
                raise ConfigError(f"the checkpoint's learned mixing draws from {list(self.sampler.tasks)}, "
                                 f"not StreamConfig.learned_tasks={list(tasks)}; restore the setting or use a new --model_dir")
        else:
            self.sampler = LearnedMixingSampler(tasks, config)
        self.streams = TaskBatchStreams(tasks, data_config, shard_info, converter, saved.get("consumed"))
        measure_config = dataclasses.replace(data_config, seed=data_config.seed + MEASURE_SEED_OFFSET)
        self.measure = TaskBatchStreams(tasks, measure_config, shard_info, converter, saved.get("measured"))
        self._task: str | None = None

    def next(self, step: int) -> Batch:
        self._task = self.sampler.choose(step)
        return self.streams.next(self._task)

    def peek(self, step: int) -> Batch | None:
        """None: the next batch depends on the sampler's choice, which its saved state reproduces."""
        return None

    def measurement_batch(self, step: int) -> Batch | None:
        """A fresh batch of this step's task when the sampler measures at `step`, else None."""
        return self.measure.next(self._task) if self.sampler.needs_measurement(step) else None

    def report(self, step: int, loss_before: float, loss_after: float) -> None:
        self.sampler.update(self._task, loss_before, loss_after, step=step)

    def metrics(self, step: int) -> dict[str, float]:
        return self.sampler.metrics()

    def state_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.sampler.state_dict(),
            "consumed": self.streams.consumed,
            "measured": self.measure.consumed,
        }


def stream_identity(stream: StreamConfig, schedule: MixtureSchedule | None,
                    learned: LearnedMixingConfig | None) -> dict[str, Any]:
    """What, beyond DataConfig, decides the batch stream (compared when resuming)."""
    identity: dict[str, Any] = {"kind": stream.kind}
    if schedule is not None:
        identity["phases"] = [
            {**dataclasses.asdict(p), "languages": list(p.languages) if p.languages else None} for p in schedule.phases
        ]
    if learned is not None:
        identity["learned_tasks"] = list(stream.learned_tasks)
        identity["learned"] = dataclasses.asdict(learned)
    return identity


def open_batch_source(
    stream: StreamConfig,
    mixture: str,
    data_config: DataConfig,
    shard_info: seqio.ShardInfo,
    converter: seqio.FeatureConverter,
    *,
    start_step: int = 0,
    expected_fingerprint: str | None = None,
    saved_state: Mapping[str, Any] | None = None,
    where: str = "",
    schedule: MixtureSchedule | None = None,
    learned: LearnedMixingConfig | None = None,
    expect_next: bool = True,
    progress: bool = False,
):
    """The batch source for `stream.kind`, positioned at `start_step` (state from the checkpoint).
    `expected_fingerprint` is batch `start_step`'s (`expect_next`) or, from older checkpoints, the
    previous batch's."""
    if stream.kind == "learned":
        return LearnedBatches(stream.learned_tasks, learned or LearnedMixingConfig(), data_config, shard_info,
                              converter, saved_state if start_step else None)
    if stream.kind == "schedule":
        def open_stream(step: int):
            return scheduled_batches(schedule, data_config, shard_info, step, converter, progress=progress)
    else:
        def open_stream(step: int):
            return training_batches(mixture, data_config, shard_info, step, converter, progress=progress)
    return StreamBatches(open_stream, start_step, expected_fingerprint, where,
                         schedule if stream.kind == "schedule" else None, expect_next)
