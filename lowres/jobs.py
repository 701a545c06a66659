"""A training job as the command line, sweeps and notebooks run it: the gin-bound settings, and the
usual hooks around the loop (throughput and MFU, held-out evaluation, plots)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lowres.evaluation.during_training import EvalConfig, HeldoutEvalHook
from lowres.training.hf_exports import HFExportHook
from lowres.training.hooks import TrainHook
from lowres.training.plots import PlotHook
from lowres.training.throughput import ThroughputHook
from lowres.training.trainer import TrainSettings, train


def default_hooks(settings: TrainSettings, eval_config: EvalConfig) -> list[TrainHook]:
    hooks: list[TrainHook] = [ThroughputHook(report_mfu=settings.train.report_mfu)]
    if eval_config.every_steps:
        hooks.append(HeldoutEvalHook(eval_config))
    hooks.append(PlotHook())
    if settings.checkpoint.hf_export_every:
        hooks.append(HFExportHook(settings.checkpoint.hf_export_every, settings.checkpoint.hf_export_keep))
    return hooks


def train_job(
    model_dir: str | Path,
    settings: TrainSettings | None = None,
    eval_config: EvalConfig | None = None,
    progress: bool = True,
    extra_hooks: Sequence[TrainHook] = (),
) -> dict[str, Any]:
    """Trains (or resumes) in `model_dir`: `settings` and `eval_config` default to their gin-bound values;
    `extra_hooks` run after the usual ones (a notebook's live plot, a user's own)."""
    settings = settings or TrainSettings.from_gin()
    eval_config = eval_config or EvalConfig()
    return train(model_dir, settings, [*default_hooks(settings, eval_config), *extra_hooks], progress=progress)
