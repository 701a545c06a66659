"""Hooks: what runs beside the training loop without being part of it (held-out evaluation, throughput
and MFU, plots, exports). The loop calls every hook at the same points:

    start(run)        once, after the state is created or restored and before the first step
    log_fields(info)  at every logged step: extra fields for that step's training record
    due(step, last)   after every step: whether `run` should run now
    run(info)         when due: a record of its own (metrics.jsonl, TensorBoard); its time is kept
                      out of the throughput figures
    end(run, summary) once, after the last step (also after a preemption)

A hook sees the run through `TrainRun` (settings, model parts, data, scoring of local batches) and a
step through `StepInfo`; it never changes the train state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import seqio
    from flax import nnx
    from jax.sharding import Mesh

    from lowres.data.config import DataConfig
    from lowres.data.tasks.prepare import PreparedData
    from lowres.run_dir import RunInfo

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """What a hook may read about the run: fixed for the whole run."""

    model_dir: Path
    info: RunInfo
    model_config: Any  # the resolved architecture config
    data_config: DataConfig
    data: PreparedData
    shard_info: seqio.ShardInfo
    converter: seqio.FeatureConverter
    mesh: Mesh
    graphdef: nnx.GraphDef
    rest: Any
    num_steps: int
    is_main: bool
    # Scoring of host-local batches with the current parameters (compiled once, sharded like training):
    loss_sums: Callable[[Any, Batch], tuple[float, float]]  # (params, batch) -> (summed NLL, target tokens)
    row_nll: Callable[[Any, Batch], np.ndarray]  # (params, batch) -> summed NLL per row
    print: Callable[[str], None]  # a console line on process 0 (safe beside the progress bar)


@dataclasses.dataclass(frozen=True)
class StepInfo:
    """The run after `step` steps."""

    step: int
    params: Any  # the current parameters (global arrays on the mesh)
    step_time_s: float | None = None  # mean wall time per step over the last logging interval


class TrainHook:
    """Base class: override what the hook needs; the defaults do nothing."""

    name = "hook"

    def start(self, run: TrainRun) -> None:
        pass

    def log_fields(self, info: StepInfo) -> Mapping[str, Any]:
        return {}

    def due(self, step: int, last_step: int) -> bool:
        return False

    def run(self, info: StepInfo) -> Mapping[str, Any] | None:
        return None

    def end(self, run: TrainRun, summary: Mapping[str, Any]) -> None:
        pass


def every(interval: int, step: int, last_step: int) -> bool:
    """Due every `interval` steps (0: never) and at the last step."""
    return bool(interval) and (step % interval == 0 or step == last_step)
