"""Periodic Hugging Face exports beside the Orbax checkpoints (`CheckpointConfig.hf_export_every`):
MODEL_DIR/hf/step_<N>, the newest `CheckpointConfig.hf_export_keep` kept. Each export appears whole
(lowres.interop.hf_export writes it beside its place and renames it in)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from typing import Any

import jax
from jax.experimental import multihost_utils

from lowres.checkpoints.trained_model import TrainedModel
from lowres.errors import ConfigError
from lowres.interop.hf_export import ExportOptions, check_exportable, export_hf
from lowres.interop.hf_layout import NotRepresentable
from lowres.training.hooks import StepInfo, TrainHook, TrainRun, every

EXPORT_DIR = "hf"
_STEP_DIR = re.compile(r"step_(\d+)")


class HFExportHook(TrainHook):
    name = "hf_export"

    def __init__(self, every_steps: int, keep: int = 1):
        self.every_steps, self.keep = every_steps, keep
        self.run_: TrainRun | None = None

    def start(self, run: TrainRun) -> None:
        self.run_ = run
        try:
            check_exportable(self._model(run, None, 0), ExportOptions())
        except NotRepresentable as error:
            raise ConfigError(f"CheckpointConfig.hf_export_every={self.every_steps}: {error}") from error

    def due(self, step: int, last_step: int) -> bool:
        return every(self.every_steps, step, last_step)

    def run(self, info: StepInfo) -> Mapping[str, Any] | None:
        run = self.run_
        params = info.params
        if jax.process_count() > 1:  # every process takes part in the gather; process 0 writes
            params = multihost_utils.process_allgather(params, tiled=True)
        if not run.is_main:
            return None
        directory = run.model_dir / EXPORT_DIR
        output = export_hf(self._model(run, params, info.step), directory / f"step_{info.step}")
        steps = sorted(int(m.group(1)) for p in directory.iterdir() if (m := _STEP_DIR.fullmatch(p.name)))
        for old in steps[: max(0, len(steps) - self.keep)]:
            shutil.rmtree(directory / f"step_{old}", ignore_errors=True)
        run.print(f"exported step {info.step} for Hugging Face to {output}")
        return {"hf_export/step": info.step}

    @staticmethod
    def _model(run: TrainRun, params: Any, step: int) -> TrainedModel:
        return TrainedModel(run.info, run.model_config, run.data.vocabulary, run.graphdef, run.rest, params, step,
                            run.model_dir)  # fmt: skip
