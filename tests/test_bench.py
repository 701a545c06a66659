"""Benchmark suite: peak lookup, FLOP accounting and JSON schema (never timings)."""

from __future__ import annotations

import pytest

from lowres.bench import peak


def test_datasheet_peaks_match_device_kinds():
    assert peak.datasheet_peak("NVIDIA H100 80GB HBM3", "bfloat16") == (989e12, "datasheet: NVIDIA H100 SXM bfloat16")
    assert peak.datasheet_peak("NVIDIA H100 PCIe", "float32")[0] == 51e12
    assert peak.datasheet_peak("NVIDIA A100-SXM4-80GB", "bf16")[0] == 312e12
    assert peak.datasheet_peak("NVIDIA H200", "float32")[0] == 67e12
    assert peak.datasheet_peak("NVIDIA L4", "float32")[0] == 30.3e12
    assert peak.datasheet_peak("TPU v5 lite", "bfloat16")[0] == 197e12
    assert peak.datasheet_peak("TPU v5p", "bfloat16")[0] == 459e12
    assert peak.datasheet_peak("TPU v6 lite", "bfloat16")[0] == 918e12
    flops, source = peak.datasheet_peak("TPU v4", "float32")
    assert flops == 275e12 and "no float32 figure" in source
    assert peak.datasheet_peak("NVIDIA T4", "bfloat16") is None
    assert peak.datasheet_peak("cpu", "float32") is None
    with pytest.raises(ValueError, match="no peak for dtype"):
        peak.datasheet_peak("NVIDIA H100", "int4")


def test_cpu_peak_is_measured_and_cached(monkeypatch):
    calls = []
    real = peak.measure_matmul_peak

    def counting(size, repeats=7, dtype=None):
        calls.append(size)
        return real(size, repeats=2, dtype=dtype)

    monkeypatch.setattr(peak, "measure_matmul_peak", counting)
    peak._measured.cache_clear()
    flops, source = peak.device_peak_flops(dtype="float32", size=64)
    again = peak.device_peak_flops(dtype="float32", size=64)
    assert flops > 0 and source == "measured: 64x64 float32 matmul"
    assert again == (flops, source) and calls == [64]
    peak._measured.cache_clear()
