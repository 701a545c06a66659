"""Throughput hook: tokens/s, model TFLOP/s per device and MFU for every logged step.

MFU divides the model FLOPs of a step (lowres.models.flops, MaxText's convention) by the peak of the
device in the model's compute dtype (`ModelConfig` dtype): a bfloat16 run on an accelerator is
measured against the bfloat16 datasheet peak, a float32 run against the float32 one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lowres.models.architecture import architecture_for
from lowres.training.hooks import StepInfo, TrainHook, TrainRun
from lowres.training.peak import device_peak_flops

# The trainer measures a CPU's peak with a 1024² matmul (a quarter of a second at start-up);
# `lowres bench` measures 2048² for its tables.
TRAINER_PEAK_SIZE = 1024


class ThroughputHook(TrainHook):
    name = "throughput"

    def __init__(self, report_mfu: bool = True, peak_size: int = TRAINER_PEAK_SIZE):
        self.report_mfu, self.peak_size = report_mfu, peak_size
        self.tokens_per_step, self.flops_per_device, self.peak = 0, 0.0, None

    def start(self, run: TrainRun) -> None:
        data = run.data_config
        arch = architecture_for(run.model_config)
        self.tokens_per_step = arch.tokens_per_step(data.batch_size, data.inputs_length, data.targets_length)
        flops = arch.training_flops(run.model_config, data.batch_size, data.inputs_length, data.targets_length)
        self.flops_per_device = flops / run.mesh.devices.size
        if self.report_mfu:
            self.peak = device_peak_flops(run.mesh.devices.flat[0], run.model_config.dtype, size=self.peak_size)
            run.print(f"MFU against {self.peak[0] / 1e12:.3g} TFLOP/s per device ({self.peak[1]})")

    def log_fields(self, info: StepInfo) -> Mapping[str, Any]:
        if not info.step_time_s:
            return {}
        fields = {
            "tokens_per_sec": self.tokens_per_step / info.step_time_s,
            "tflops_per_device": self.flops_per_device / info.step_time_s / 1e12,
        }
        if self.peak:
            fields["mfu"] = self.flops_per_device / info.step_time_s / self.peak[0]
        return fields

