"""The trainer's throughput hook: tokens/s, TFLOP/s and MFU against the peak of the model's compute dtype."""

from __future__ import annotations

import types

import numpy as np
import pytest

from lowres.data.config import DataConfig
from lowres.models.architecture import ModelConfig, architecture_for
from lowres.training.hooks import StepInfo
from lowres.training.throughput import ThroughputHook


class FakeGpu:
    platform = "gpu"
    device_kind = "NVIDIA H100 80GB HBM3"


def _run(dtype: str, devices=1):
    model_config = ModelConfig(architecture="decoder_only", preset="tiny", overrides={"dtype": dtype}).resolve(64)
    lines = []
    run = types.SimpleNamespace(
        model_config=model_config, data_config=DataConfig(batch_size=8, inputs_length=16, targets_length=16),
        mesh=types.SimpleNamespace(devices=np.array([FakeGpu()] * devices)), print=lines.append)
    return run, lines


@pytest.mark.parametrize("dtype,peak", [("bfloat16", 989e12), ("float32", 67e12), ("float16", 989e12)])
def test_mfu_uses_the_peak_of_the_models_compute_dtype(dtype, peak):
    run, lines = _run(dtype, devices=2)
    hook = ThroughputHook(report_mfu=True)
    hook.start(run)
    assert hook.peak[0] == peak and dtype in hook.peak[1]
    assert "MFU against" in lines[0]
    flops = architecture_for("decoder_only").training_flops(run.model_config, 8, 16, 16)
    fields = hook.log_fields(StepInfo(step=10, params=None, step_time_s=0.5))
    assert fields["tokens_per_sec"] == 8 * 32 / 0.5
    assert fields["mfu"] == pytest.approx(flops / 2 / 0.5 / peak)
    assert fields["tflops_per_device"] == pytest.approx(flops / 2 / 0.5 / 1e12)


def test_no_mfu_when_not_asked_and_nothing_before_the_first_timing():
    run, lines = _run("float32")
    hook = ThroughputHook(report_mfu=False)
    hook.start(run)
    assert hook.peak is None and not lines
    assert "mfu" not in hook.log_fields(StepInfo(step=1, params=None, step_time_s=0.25))
    assert hook.log_fields(StepInfo(step=1, params=None, step_time_s=None)) == {}
