"""Batch streams beyond one static mixture: staged phases with replay, and per-task streams.

Two stream kinds share `lowres.data.streams.pipeline.training_batches`' contract (an endless iterator of
this host's numpy batches, resumable so that a restart sees exactly the uninterrupted run's batches):

* `scheduled_batches(schedule, ...)`: a `MixtureSchedule` of (num_steps, mixture) phases, e.g.
  "pretrain on high-resource, then mix" (METHODS §4), optionally replaying the previous phase's
  data at a fraction (METHODS §6). Resuming needs only the step.
* `TaskBatchStreams` + `sample_task`: one stream per task; the caller picks which task supplies
  each step's batch from rates it may change at any time (learned LM/MT mixing, METHODS §3).
  Resuming needs the recorded `state_dict()` (batches consumed per task).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping, Sequence

import gin
import numpy as np
import seqio

from lowres.data.config import DataConfig
from lowres.data.languages import normalize_language
from lowres.data.streams.pipeline import training_batches
from lowres.data.tasks.names import task_language
from lowres.config_fields import any_value, at_least, between, validated
from lowres.errors import ConfigError, DataError

Batch = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Staged schedules


@gin.configurable
@validated(num_steps=at_least(1), mixture=any_value("a registered mixture or task name"),
           replay=between(0.0, 1.0, high_open=True))  # fmt: skip
@dataclasses.dataclass(frozen=True)
class Phase:
    """`num_steps` steps on `mixture` (None: until training ends; only the last phase).

    `languages` keeps only those languages' tasks of `mixture` (task names `<corpus>.<lang>.<obj>`,
    rates unchanged), so one registered mixture serves every phase. `replay` is the share of
    examples drawn from the previous phase's data (METHODS §6 suggests about 0.05).
    """

    num_steps: int | None = None
    mixture: str = ""
    languages: Sequence[str] | None = None
    replay: float = 0.0


@gin.configurable
@validated()
@dataclasses.dataclass(frozen=True)
class MixtureSchedule:
    """Consecutive training phases; a phase may be given as `Phase` or as a (num_steps, mixture) pair."""

    phases: Sequence[Phase | tuple[int | None, str]] = ()

    def __post_init__(self):
        phases = tuple(p if isinstance(p, Phase) else Phase(*p) for p in self.phases)
        object.__setattr__(self, "phases", phases)
        if not phases:
            raise ConfigError("MixtureSchedule.phases is empty: give at least one (num_steps, mixture) phase")
        for i, phase in enumerate(phases):
            where = f"MixtureSchedule.phases[{i}]"
            if not phase.mixture:
                raise ConfigError(f"{where} names no mixture")
            if phase.num_steps is None and i != len(phases) - 1:
                raise ConfigError(f"{where}: only the last phase may run without num_steps")
            if phase.replay and i == 0:
                raise ConfigError(f"{where}.replay: the first phase has no earlier data to replay")

    @property
    def boundaries(self) -> tuple[int, ...]:
        """First step of each phase."""
        starts = [0]
        for phase in self.phases[:-1]:
            starts.append(starts[-1] + phase.num_steps)
        return tuple(starts)

    def phase_index(self, step: int) -> int:
        """Index of the phase that trains step `step` (the last phase continues past its end)."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        return int(np.searchsorted(self.boundaries, step, side="right")) - 1


def _name_part(text: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in text)


def _rate_name(x: float) -> str:
    return f"{x:g}".replace(".", "p").replace("-", "m")


def register_language_subset(mixture: str, languages: Sequence[str]) -> str:
    """Registers (idempotently) the part of `mixture` whose tasks are in `languages`; returns its name.

    Rates of the kept tasks are those of `mixture`, so relative language shares are unchanged.
    """
    parent = seqio.get_mixture_or_task(mixture)
    tasks = parent.tasks if isinstance(parent, seqio.Mixture) else [parent]
    # Pairs (`eng_Latn-pan_Guru`) and clones (`eng_Latn_clone1_p0p5`) are matched as spelled.
    present = {task_language(t.name) for t in tasks}
    wanted = [lang if lang in present or "-" in lang else normalize_language(lang) for lang in languages]
    kept = [t for t in tasks if task_language(t.name) in wanted]
    if not kept:
        have = sorted({task_language(t.name) for t in tasks})
        raise ConfigError(f"mixture {mixture!r} has no tasks for languages {wanted}; it has {have}")
    name = f"{mixture}.only_{'_'.join(_name_part(lang) for lang in sorted(wanted))}"
    rate = parent.get_rate if isinstance(parent, seqio.Mixture) else (lambda task: 1.0)
    seqio.MixtureRegistry.remove(name)
    seqio.MixtureRegistry.add(name, [(t.name, rate(t)) for t in kept])
    return name


def register_replay_mixture(current: str, earlier: str, fraction: float) -> str:
    """Registers a mixture drawing a share `fraction` of examples from `earlier`, the rest from `current`."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"replay fraction must lie in (0, 1), got {fraction}")
    name = f"{current}.replay_{_rate_name(fraction)}_of_{earlier}"
    seqio.MixtureRegistry.remove(name)
    seqio.MixtureRegistry.add(name, [(current, 1.0 - fraction), (earlier, fraction)])
    return name


def resolve_schedule(schedule: MixtureSchedule) -> tuple[str, ...]:
    """The registered mixture each phase draws from, registering language subsets and replay mixtures."""
    names: list[str] = []
    for phase in schedule.phases:
        base = register_language_subset(phase.mixture, phase.languages) if phase.languages else phase.mixture
        seqio.get_mixture_or_task(base)  # a clear seqio error naming the closest registered names
        names.append(base)
    resolved = list(names)
    for i, phase in enumerate(schedule.phases):
        if phase.replay:
            resolved[i] = register_replay_mixture(names[i], names[i - 1], phase.replay)
    return tuple(resolved)


def phase_config(config: DataConfig, index: int) -> DataConfig:
    """Phase `index` shuffles with its own seed, so a later phase does not repeat an earlier order."""
    return dataclasses.replace(config, seed=config.seed + index)


def scheduled_batches(
    schedule: MixtureSchedule,
    data_config: DataConfig,
    shard_info: seqio.ShardInfo,
    start_step: int = 0,
    converter: seqio.FeatureConverter | None = None,
    progress: bool = False,
) -> Iterator[Batch]:
    """Endless stream of this host's batches following `schedule`, starting at `start_step`.

    Phase i's batches are `training_batches(mixture_i, seed + i)` from its own step 0, so a restart
    at any step (also across a phase boundary) yields exactly the uninterrupted run's batches.
    Each phase's pipeline is built when that phase begins.
    """
    mixtures = resolve_schedule(schedule)
    starts = schedule.boundaries
    first = schedule.phase_index(start_step)
    for index in range(first, len(mixtures)):
        offset = start_step - starts[index] if index == first else 0
        stream = training_batches(
            mixtures[index], phase_config(data_config, index), shard_info, offset, converter, progress=progress
        )
        length = schedule.phases[index].num_steps
        if index < len(mixtures) - 1:
            yield from itertools.islice(stream, length - offset)
        else:
            yield from stream


# ---------------------------------------------------------------------------------------------
# Per-task streams whose mixing the caller controls


def sample_task(rates: Mapping[str, float], seed: int, step: int) -> str:
    """The task that supplies step `step`'s batch, drawn from `rates` (any non-negative weights).

    Stateless: the draw depends only on (seed, step, rates), so replaying the same rates after a
    restart gives the same choices without storing a generator state.
    """
    names = list(rates)
    weights = np.array([rates[n] for n in names], dtype=np.float64)
    if not names or (weights < 0).any() or not weights.sum() > 0:
        raise ConfigError(f"rates must be non-negative with a positive sum, got {dict(rates)}")
    rng = np.random.default_rng([seed, step])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


class TaskBatchStreams:
    """One endless `training_batches` stream per task (or mixture); `next(task)` draws its next batch.

    Streams are built on first use. The state is the number of batches consumed per task, so
    `TaskBatchStreams(..., consumed=old.state_dict()["consumed"])` continues exactly where `old` was.
    Every task's stream uses the same seed, feature converter and lengths as `training_batches`.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        data_config: DataConfig,
        shard_info: seqio.ShardInfo,
        converter: seqio.FeatureConverter | None = None,
        consumed: Mapping[str, int] | None = None,
    ):
        if not tasks:
            raise ConfigError("TaskBatchStreams needs at least one task or mixture name")
        unknown = set(consumed or {}) - set(tasks)
        if unknown:
            raise DataError(f"recorded stream state names tasks {sorted(unknown)} that are not in {list(tasks)}")
        for name in tasks:
            seqio.get_mixture_or_task(name)
        self.tasks = tuple(tasks)
        self._config, self._shard_info, self._converter = data_config, shard_info, converter
        self._consumed = {name: int((consumed or {}).get(name, 0)) for name in tasks}
        self._streams: dict[str, Iterator[Batch]] = {}

    def next(self, task: str) -> Batch:
        if task not in self._consumed:
            raise KeyError(f"unknown task {task!r}; streams exist for {list(self.tasks)}")
        if task not in self._streams:
            self._streams[task] = training_batches(
                task, self._config, self._shard_info, self._consumed[task], self._converter
            )
        batch = next(self._streams[task])
        self._consumed[task] += 1
        return batch

    @property
    def consumed(self) -> dict[str, int]:
        return dict(self._consumed)

    def state_dict(self) -> dict:
        """JSON-serialisable position of every stream (store it with the checkpoint)."""
        return {"consumed": dict(self._consumed)}


class AdjustableMixture:
    """Batch-level mixture of task streams with rates the caller may change between steps.

    `batch(step)` draws the task with `sample_task(rates, seed, step)` and returns (task, batch):
    deterministic given the seed and the sequence of `set_rates` calls; `state_dict()` records
    the rates and the stream positions, so a restart continues exactly.
    """

    def __init__(self, streams: TaskBatchStreams, rates: Mapping[str, float], seed: int = 0):
        self.streams, self.seed = streams, seed
        self.set_rates(rates)

    def set_rates(self, rates: Mapping[str, float]) -> None:
        if set(rates) != set(self.streams.tasks):
            raise ConfigError(f"rates name {sorted(rates)}, but the streams are {sorted(self.streams.tasks)}")
        total = float(sum(rates.values()))
        if any(r < 0 for r in rates.values()) or total <= 0:
            raise ConfigError(f"rates must be non-negative with a positive sum, got {dict(rates)}")
        self.rates = {name: float(rates[name]) / total for name in self.streams.tasks}

    def batch(self, step: int) -> tuple[str, Batch]:
        task = sample_task(self.rates, self.seed, step)
        return task, self.streams.next(task)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "rates": dict(self.rates), **self.streams.state_dict()}

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping,
        data_config: DataConfig,
        shard_info: seqio.ShardInfo,
        converter: seqio.FeatureConverter | None = None,
    ) -> AdjustableMixture:
        streams = TaskBatchStreams(list(state["rates"]), data_config, shard_info, converter, state["consumed"])
        return cls(streams, state["rates"], int(state["seed"]))
