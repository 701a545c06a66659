"""What the index-based training stream needs to know about a registered seqio task.

When lowres registers a task it also records a plan: which token-cache source and entry hold the
task's text, and what turns it into examples (an objective's denoisers, or a translation direction).
Training reads the plans of a mixture's tasks and samples from the cache by index; tasks registered
without a plan (a user's own seqio tasks) are read through seqio's tf.data pipeline instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lowres.data.cache.sources import CacheSource, mono_entry, pair_entry
from lowres.data.tasks.objectives import Denoiser, Translation


@dataclasses.dataclass(frozen=True, eq=False)
class ClonePlan:
    """A cloned language (lowres.data.mixing.clones): each example is mapped through `id_map` with
    probability `probability`."""

    id_map: np.ndarray
    probability: float


@dataclasses.dataclass(frozen=True)
class MonoPlan:
    """One language's text under an objective: its denoisers and their rates, chosen per example."""

    task: str
    source: CacheSource
    lang: str
    split: str  # the source split holding the task's "train" split
    denoisers: tuple[tuple[Denoiser, float], ...]
    clone: ClonePlan | None = None

    @property
    def entry(self) -> str:
        return mono_entry(self.lang, self.split)


@dataclasses.dataclass(frozen=True)
class PairPlan:
    """One translation direction over a pair's aligned text: `<2tgt> source` -> `target`."""

    task: str
    source: CacheSource
    src: str  # the pair as the source stores it (entry pair/<src>-<tgt>)
    tgt: str
    split: str
    translation: Translation
    clone: ClonePlan | None = None

    @property
    def entry(self) -> str:
        return pair_entry(self.src, self.tgt, self.split)

    @property
    def reads(self) -> tuple[str, str]:
        """(input side, output side): ("src", "tgt") forward, ("tgt", "src") backward."""
        return ("tgt", "src") if self.translation.direction == "backward" else ("src", "tgt")

    @property
    def target_lang(self) -> str:
        return self.src if self.translation.direction == "backward" else self.tgt


Plan = MonoPlan | PairPlan
_PLANS: dict[str, Plan] = {}


def record_plan(plan: Plan) -> None:
    _PLANS[plan.task] = plan


def plan_for(task: str) -> Plan | None:
    return _PLANS.get(task)


def forget_plan(task: str) -> None:
    _PLANS.pop(task, None)
