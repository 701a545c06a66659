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


# --- FLOP accounting -------------------------------------------------------------------------------

import json


from lowres.bench import checkpoint, report, scale, suite
from lowres.bench import train as train_bench
from lowres.models import flops



def _hand_count_layer(tokens, batch, q_len, k_len, d=256, heads=4, hd=64, d_ff=1024, causal=True):
    """Forward FLOPs of one self-attention + gated-MLP block, counted by hand."""
    projections = 2 * tokens * d * (3 * heads * hd) + 2 * tokens * heads * hd * d
    scores = 2 * (2 * batch * q_len * k_len * heads * hd)  # QK^T and PV
    mlp = 3 * 2 * tokens * d * d_ff
    return projections + (scores // 2 if causal else scores) + mlp


def test_maxtext_ref_flops_match_a_hand_count():
    shape = train_bench.get_shape("maxtext-ref")
    config = shape.model_config()
    assert (config.d_model, config.num_layers, config.num_heads, config.head_dim, config.d_ff) == (256, 4, 4, 64, 1024)
    assert config.activation == "silu" and config.vocab_size == 32000 and config.dtype == "float32"
    b, t = 4, 256
    assert shape.tokens_per_step() == b * t == 1024
    forward = 4 * _hand_count_layer(b * t, b, t, t) + 2 * b * t * 256 * 32000
    assert shape.flops_per_step() == 3 * forward
    assert shape.flops_per_step() == flops.training_flops_per_step(config, 4, 256)


def test_t5_ref_flops_match_a_hand_count():
    shape = train_bench.get_shape("t5-ref")
    config = shape.model_config()
    assert (config.d_model, config.num_encoder_layers, config.num_decoder_layers) == (256, 4, 4)
    assert (config.num_heads, config.head_dim, config.d_ff, config.activation) == (4, 64, 1024, "silu")
    b, s, t = 4, 256, 128
    assert shape.tokens_per_step() == b * (s + t)
    encoder = 4 * _hand_count_layer(b * s, b, s, s, causal=False)
    cross = 2 * b * t * 256 * 256 * 2 + 2 * b * s * 256 * 256 * 2 + 4 * b * t * s * 4 * 64
    decoder = 4 * (_hand_count_layer(b * t, b, t, t) + cross)
    forward = encoder + decoder + 2 * b * t * 256 * 32000
    assert shape.flops_per_step() == 3 * forward
    assert shape.flops_per_step() == flops.training_flops_per_step(config, 4, 256, targets_len=128)


def test_quickstart_shape_is_read_from_the_gin_file():
    shape = train_bench.get_shape("quickstart")
    text = train_bench.QUICKSTART_GIN.read_text()
    assert f'ModelConfig.preset = "{shape.preset}"' in text
    assert f"DataConfig.batch_size = {shape.batch_size}" in text
    assert f"DataConfig.inputs_length = {shape.inputs_length}" in text
    assert f"VocabularyConfig.vocab_size = {shape.vocab_size - 100}" in text
    with pytest.raises(ValueError, match="unknown benchmark shape"):
        train_bench.get_shape("gpt5")


def test_throughput_and_step_statistics():
    stats = report.step_stats([1.0, 2.0, 2.0, 2.0, 3.0])
    assert stats["step_time_median_s"] == 2.0 and stats["measured_steps"] == 5
    assert stats["step_time_spread"] == pytest.approx(0.5)  # IQR (1.5..2.5) / median
    t = report.throughput(tokens_per_step=1000, flops_per_step=8e9, step_time_s=2.0, num_devices=4, peak_flops=2e9)
    assert t == {"tokens_per_sec": 500.0, "tflops_per_device": 1e-3, "mfu": 0.5}
    with pytest.raises(ValueError):
        report.step_stats([])


def test_scale_candidates_start_at_gpt2_small_and_grow():
    names = scale.candidates()
    assert names[0] == "gpt2-small" and "tiny" not in names
    from lowres.models.config import decoder_only_config

    sizes = [decoder_only_config(n, 32000).num_params() for n in names]
    assert sizes == sorted(sizes) and sizes[0] >= 124e6


# --- JSON schema on tiny synthetic runs (never timings) ----------------------------------------------


def _check_common_schema(record, case):
    for field in report.COMMON_FIELDS:
        assert field in record, field
    assert record["case"] == case
    json.dumps(record)  # serialisable


def test_bench_train_cli_prints_json_last_with_right_accounting(tmp_path, capsys):
    from lowres import cli

    output = tmp_path / "out" / "tiny.json"
    argv = ["bench", "train", "--shape", "tiny-t5", "--synthetic", "--steps", "2", "--peak_size", "128", "--json",
            "--output", str(output)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    record = json.loads(lines[-1])
    _check_common_schema(record, "train")
    assert any(line.startswith("| shape |") for line in lines)
    assert json.loads(output.read_text()) == record
    shape = train_bench.get_shape("tiny-t5")
    assert record["measured_steps"] == 2 and record["data"] == "synthetic" and record["shape"] == "tiny-t5"
    assert record["tokens_per_step"] == 2 * (32 + 16)
    assert record["flops_per_step"] == flops.training_flops_per_step(shape.model_config(), 2, 32, targets_len=16)
    step = record["step_time_median_s"]
    assert record["tokens_per_sec"] == pytest.approx(record["tokens_per_step"] / step)
    assert record["mfu"] == pytest.approx(record["flops_per_step"] / step / (record["peak_gflops"] * 1e9))
    assert record["peak_source"] == "measured: 128x128 float32 matmul"
    assert record["xla_flops_per_step"] > 0 and record["peak_rss_mb"] > 0


def test_bench_cli_rejects_bad_options(capsys):
    from lowres import cli

    assert cli.main(["bench", "train", "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    assert cli.main(["bench", "data", "--shape", "t5-ref"]) == 2
    assert "quickstart shape only" in capsys.readouterr().err


def test_checkpoint_case_schema_and_round_trip(tmp_path):
    record = checkpoint.run("tiny", vocab_size=256, repeats=1, directory=tmp_path, log=lambda _: None)
    _check_common_schema(record, "checkpoint")
    assert record["checkpoint_mb"] > 0 and record["restore_mb_per_s"] > 0 and record["copy_mb_per_s"] > 0
    assert record["restore_fraction_of_copy"] == pytest.approx(record["restore_mb_per_s"] / record["copy_mb_per_s"])
    assert list(tmp_path.iterdir()) == []  # scratch files cleaned up


def test_decode_case_is_offered_only_when_present():
    if suite.decode_available():
        pytest.skip("lowres/bench/decode.py is present; its own tests cover it")
    with pytest.raises(ValueError, match="decode.py"):
        suite.run_case("decode", suite.Options(), log=lambda _: None)
