"""Benchmark suite: peak lookup, FLOP accounting and JSON schema (never timings)."""

from __future__ import annotations

import pytest

from lowres.training import peak


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
    real = peak.matmul_rates

    def counting(size, repeats=7, dtype=None):
        calls.append(size)
        return real(size, repeats=2, dtype=dtype)

    monkeypatch.setattr(peak, "matmul_rates", counting)
    peak._measured.cache_clear()
    flops, source = peak.device_peak_flops(dtype="float32", size=64)
    again = peak.device_peak_flops(dtype="float32", size=64)
    per_cpu = peak.matmul_flops_per_cpu_second("float32", size=64)
    assert flops > 0 and per_cpu > 0 and source == "measured: 64x64 float32 matmul"
    assert again == (flops, source) and calls == [64]  # one measurement serves both rates
    peak._measured.cache_clear()


# --- FLOP accounting -------------------------------------------------------------------------------

import json
import platform
import sys


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


def test_scale_candidates_run_largest_first_down_to_gpt2_small():
    names = scale.candidates()
    assert names[-1] == "gpt2-small" and names[0] == "gpt2-medium" and "tiny" not in names
    from lowres.models.config import decoder_only_config

    sizes = [decoder_only_config(n, 32000).num_params() for n in names]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] >= 124e6
    assert scale.train_state_gib(2**28) == 4.0  # parameters, gradients, two moments, 4 bytes each


def test_records_name_the_cpu_they_ran_on(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC 9B14\n")
    assert report.cpu_model(cpuinfo) == "AMD EPYC 9B14"
    fallback = report.cpu_model(tmp_path / "absent")  # not Linux: what `platform` knows, never empty
    assert fallback and fallback == (platform.processor() or platform.machine())
    assert report.machine_fields()["cpu_model"] == report.cpu_model()


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
    per_cpu = record["flops_per_step"] / record["step_cpu_time_median_s"]
    assert record["gflops_per_cpu_second"] == pytest.approx(per_cpu / 1e9)
    assert record["mfu_per_cpu_second"] == pytest.approx(per_cpu / (record["matmul_gflops_per_cpu_second"] * 1e9))


def test_bench_cli_rejects_bad_options(capsys):
    from lowres import cli

    assert cli.main(["bench", "train", "--steps", "0"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err
    assert cli.main(["bench", "data", "--shape", "t5-ref"]) == 2
    assert "quickstart shape only" in capsys.readouterr().err
    assert cli.main(["bench", "train", "--objective", "ul2"]) == 2
    assert "apply to `lowres bench data` only" in capsys.readouterr().err
    assert cli.main(["bench", "data", "--objective", "span"]) == 2  # refused before any pipeline is built
    assert "unknown objective span; choose from ul2, r_and_s" in capsys.readouterr().err


def test_checkpoint_case_schema_and_round_trip(tmp_path):
    record = checkpoint.run("tiny", vocab_size=256, repeats=1, directory=tmp_path, log=lambda _: None)
    _check_common_schema(record, "checkpoint")
    assert record["checkpoint_mb"] > 0 and record["restore_mb_per_s"] > 0 and record["copy_mb_per_s"] > 0
    mb = record["checkpoint_mb"]
    assert record["restore_mb_per_s"] == pytest.approx(mb / record["restore_s"])
    assert record["restore_cold_mb_per_s"] == pytest.approx(mb / record["restore_cold_s"])
    assert record["restore_fraction_of_copy"] == pytest.approx(record["restore_mb_per_s"] / record["copy_mb_per_s"])
    assert record["restore_cold_fraction_of_copy"] == pytest.approx(
        record["restore_cold_mb_per_s"] / record["copy_cold_mb_per_s"])
    assert record["meets_target"] == (record["restore_fraction_of_copy"] >= 0.5) and record["compress"] is False
    # uncompressed: the arrays' bytes plus a little metadata
    assert record["array_mb"] <= mb < record["array_mb"] * 1.2 + 0.5
    assert list(tmp_path.iterdir()) == []  # scratch files cleaned up


def test_drop_from_page_cache_keeps_the_bytes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"abc" * 1000)
    checkpoint.drop_from_page_cache(tmp_path / "d")
    checkpoint.drop_from_page_cache(tmp_path / "d" / "x.bin")
    assert (tmp_path / "d" / "x.bin").read_bytes() == b"abc" * 1000


def test_decode_case_is_offered_only_when_present(monkeypatch):
    """`decode_available` follows lowres/bench/decode.py; absent (simulated by hiding the module from the
    import system), `bench decode` is a clear error and `all` leaves the case out; present, the case runs
    `decode.run` with the command-line options and `all` plans it. `decode.run` is replaced by a stub:
    the real measurement (and the optional HF/torch side) is tests/test_bench_decode.py's."""
    import importlib.util
    from pathlib import Path

    from lowres.bench import decode

    assert (Path(suite.__file__).parent / "decode.py").is_file() and suite.decode_available()
    find_spec = importlib.util.find_spec

    with monkeypatch.context() as absent:
        absent.setattr(importlib.util, "find_spec",
                       lambda name, *a: None if name == "lowres.bench.decode" else find_spec(name, *a))
        assert not suite.decode_available()
        with pytest.raises(ValueError, match="decode.py"):
            suite.run_case("decode", suite.Options(), log=lambda _: None)
        assert "decode" not in [step.argv[0] for step in suite.all_plan(suite.Options())]
    assert suite.decode_available()

    calls = []
    rows = [{"architecture": "decoder_only", "batch": 2, "cache": True, "lowres_tokens_per_sec": 123.0}]

    def fake_run(**kwargs):
        calls.append(kwargs)
        return {"case": "decode", "tokens_per_sec": 123.0, "rows": rows}

    monkeypatch.setattr(decode, "run", fake_run)
    logged = []
    record, table = suite.run_case("decode", suite.Options(shape="tiny", steps=2), log=logged.append)
    assert calls == [{"shape": "tiny", "steps": 2, "log": logged.append}]
    assert record["rows"] == rows and table == decode.table(rows) and "| decoder_only | 2 |" in table
    suite.run_case("decode", suite.Options(), log=logged.append)
    assert calls[-1] == {"log": logged.append}  # unset options are left to decode.run's defaults

    monkeypatch.setattr(decode, "run", lambda **kwargs: {"case": "decode", "tokens_per_sec": 5.0})
    record, table = suite.run_case("decode", suite.Options(), log=logged.append)
    assert table == report.field_table(record) and "| tokens_per_sec | 5" in table  # no rows: a field table

    (planned,) = [step for step in suite.all_plan(suite.Options()) if step.argv[0] == "decode"]
    assert planned.argv == ("decode", "--steps", "1") and planned.timeout_s == 75
    (longer,) = [s for s in suite.all_plan(suite.Options(time_limit_s=2 * suite.ALL_BUDGET_S)) if s.argv[0] == "decode"]
    assert longer.timeout_s == 150


def test_data_case_accounting_without_building_pipelines(monkeypatch):
    """The data record's ratios and worst case, from rows the pipeline would report (pipelines themselves
    take minutes to build; `lowres bench data` runs them)."""
    from lowres.bench import data

    def fake(shape, num_batches, warmup_batches=data.WARMUP_BATCHES, executor="indexed"):
        per_core = {"ul2": 20_000.0, "r_and_s": 100_000.0}[shape.objective] * (2 if shape.architecture ==
                                                                                 "encoder_decoder" else 1)
        per_core /= {"indexed": 1.0, "seqio": 4.0}[executor]
        return {"objective": shape.objective, "architecture": shape.architecture, "executor": executor,
                "batches": num_batches, "tokens": num_batches * shape.tokens_per_step(),
                "tokens_per_sec_per_core": per_core, "tokens_per_sec": per_core, "startup_s": 1.0}

    monkeypatch.setattr(data, "measure_pipeline", fake)
    record = data.run(5, trainer_tokens_per_sec=2000.0, parts=("steady",), log=lambda _: None)
    _check_common_schema(record, "data")
    assert len(record["rows"]) == 8 and record["trainer_source"] == "given"  # both executors side by side
    assert {r["executor"] for r in record["rows"]} == {"indexed", "seqio"}
    assert record["tokens_per_sec"] == record["tokens_per_sec_per_core_min"] == 20_000.0  # the default executor's
    assert record["ratio_min"] == 10.0 and record["meets_target"] and record["ratio_executor"] == "indexed"
    assert {r["ratio_to_trainer"] for r in record["rows"] if r["executor"] == "indexed"} == {10.0, 20.0, 50.0, 100.0}
    assert "| ul2 | decoder_only | seqio |" in data.tables(record)
    one = data.run(5, objectives=("r_and_s",), architectures=("decoder_only",), executors=("indexed",),
                   trainer_tokens_per_sec=2000.0, parts=("steady",), log=lambda _: None)
    assert [(r["objective"], r["architecture"]) for r in one["rows"]] == [("r_and_s", "decoder_only")]
    assert one["ratio_min"] == 50.0
    with pytest.raises(ValueError, match="unknown objective span"):
        data.run(5, objectives=("span",), trainer_tokens_per_sec=2000.0, log=lambda _: None)
    with pytest.raises(ValueError, match="unknown part fast"):
        data.run(5, parts=("fast",), log=lambda _: None)
    with pytest.raises(ValueError, match="--flores_dir=/nowhere is not a directory"):
        data.run(5, parts=("flores",), flores_dir="/nowhere", log=lambda _: None)


def test_scale_limit_that_runs_out_tries_nothing():
    record = scale.run(["tiny"], timeout_s=0.5, log=lambda _: None)
    _check_common_schema(record, "scale")
    assert record["largest_preset"] is None and not record["meets_target"]
    assert record["rows"][0]["ok"] is False and "limit ran out" in record["rows"][0]["error"]


def test_all_plan_fits_ten_minutes_and_covers_every_case():
    plan = suite.all_plan(suite.Options())
    assert sum(step.timeout_s for step in plan) <= suite.ALL_BUDGET_S <= 600
    cases = [step.argv[0] for step in plan]
    assert set(cases) == set(suite.CASES) - {"all", "compare"} - ({"decode"} if not suite.decode_available() else set())
    shapes = [step.argv[step.argv.index("--shape") + 1] for step in plan if step.argv[0] == "train"]
    assert shapes == ["maxtext-ref", "t5-ref", "quickstart"]
    assert all("--synthetic" in step.argv for step in plan if step.argv[0] == "train")
    data_argv = plan[cases.index("data")].argv
    quickstart = train_bench.quickstart_shape()  # `all` measures the stream the quickstart trains on
    assert data_argv[data_argv.index("--objective") + 1] == quickstart.objective
    assert data_argv[data_argv.index("--architecture") + 1] == quickstart.architecture
    longer = suite.all_plan(suite.Options(time_limit_s=3 * suite.ALL_BUDGET_S))
    assert [s.timeout_s for s in longer] == [3 * s.timeout_s for s in plan]
    assert longer[cases.index("scale")].argv[-1] == str(int(3 * float(plan[cases.index("scale")].argv[-1])))


def test_all_runs_each_case_in_a_subprocess_and_records_scale(tmp_path):
    """`all` on tiny shapes: the scale case (its own subprocess per candidate) with FLOP accounting, and
    a case over its time limit recorded as an error instead of stopping the suite."""
    lines = []
    plan = [suite.Step(("scale", "--shape", "tiny", "--steps", "1", "--peak_size", "64"), 300),
            suite.Step(("train", "--shape", "tiny", "--synthetic"), 0.05)]
    record, table = suite.run_all(suite.Options(), lines.append, plan=plan)
    _check_common_schema(record, "all")
    scaled, late = record["results"]
    json.dumps(record)
    assert late["case"] == "train" and late["error"].startswith("timed out after 0s")
    _check_common_schema(scaled, "scale")
    (row,) = scaled["rows"]
    assert row["ok"] and scaled["largest_preset"] == "tiny" and scaled["largest_params"] == row["params"]
    shape = scale.shape_for("tiny")
    assert row["params"] == shape.model_config().num_params()
    assert row["tokens_per_step"] == 256 and row["flops_per_step"] == flops.training_flops_per_step(
        shape.model_config(), 1, 256)
    assert scaled["tokens_per_sec"] == pytest.approx(256 / scaled["step_time_median_s"])
    assert row["train_state_gib"] == pytest.approx(16 * row["params"] / 2**30)
    assert row["gflops_per_cpu_second"] == pytest.approx(row["flops_per_step"] / row["step_cpu_time_median_s"] / 1e9)
    assert scaled["mfu_per_cpu_second"] == row["mfu_per_cpu_second"] > 0
    assert scaled["peak_rss_mb"] > 0 and record["peak_rss_mb"] >= scaled["peak_rss_mb"]
    assert "| scale | tiny |" in table and "timed out" in table and record["wall_s"] > 0
    assert scaled["cpu_s"] > 0 and record["cpu_s"] == pytest.approx(scaled["cpu_s"] + late["cpu_s"])


@pytest.mark.slow
def test_accelerator_benchmark_script_runs_unattended_and_records_a_failing_case(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, LOWRES_BENCH_SHAPES="tiny", LOWRES_BENCH_STEPS="2", LOWRES_BENCH_ATTENTION="dot_product cudnn",
               LOWRES_BENCH_DECODE="0", LOWRES_BENCH_ARGS="--peak_size=128", LOWRES=f"{sys.executable} -m lowres.cli",
               PYTHON=sys.executable, JAX_PLATFORMS="cpu")  # fmt: skip
    env.pop("XLA_FLAGS", None)
    result = subprocess.run([str(root / "benchmarks" / "gpu.sh"), str(tmp_path / "out")], env=env, cwd=root,
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    cudnn, fused = json.loads((tmp_path / "out" / "summary.json").read_text())["train"]
    # cuDNN attention on a CPU: that case fails with its one-line reason and the script goes on.
    assert cudnn == {"case": "train", "shape": "tiny", "attention": "cudnn", "failed": True}
    assert "needs a GPU" in (tmp_path / "out" / "train-tiny-cudnn.log").read_text().strip().splitlines()[-1]
    assert (fused["dtype"], fused["attention"], fused["measured_steps"]) == ("bfloat16", "dot_product", 2)
    assert fused["peak_source"] == "measured: 128x128 bfloat16 matmul" and fused["mfu"] > 0  # the bf16 peak
    assert "| tiny | dot_product | bfloat16 |" in result.stdout and "| tiny | cudnn | | | failed |" in result.stdout


def test_bench_train_dtype_and_attention_options_are_checked_first(capsys):
    from lowres import cli

    assert cli.main(["bench", "train", "--shape", "tiny", "--attention", "flash"]) == 2
    assert "attention must be one of ('plain', 'dot_product', 'cudnn'), got 'flash'" in capsys.readouterr().err
    assert cli.main(["bench", "data", "--dtype", "bfloat16"]) == 2
    assert "apply to `lowres bench train` only" in capsys.readouterr().err
    assert train_bench.get_shape("decoder-1b").model_config().num_params() > 1e9


# ---- `lowres bench compare --peer=maxtext` (the MaxText side needs its own Python 3.12 venv; not run here)

# Lines as MaxText 0.2.5 prints them (from a run of its train command on this project's machine).
MAXTEXT_LOG = """\
I1204 01:45:26.998087 140545512348544 metric_logger.py:265] completed step: 0, seconds: 0.046, TFLOP/s/device: 1.706, Tokens/s/device: 22481.777, total_weights: 1024, loss: 10.880
I1204 01:45:27.731684 140545512348544 metric_logger.py:265] completed step: 1, seconds: 0.147, TFLOP/s/device: 0.527, Tokens/s/device: 6944.115, total_weights: 1024, loss: 10.880
I1204 01:45:28.424603 140545512348544 metric_logger.py:265] completed step: 2, seconds: 0.744, TFLOP/s/device: 0.104, Tokens/s/device: 1375.457, total_weights: 1024, loss: 10.839
I1204 01:45:28.500000 140545512348544 metric_logger.py:393] To see full metrics 'tensorboard --logdir=out'
I1204 01:45:29.115897 140545512348544 metric_logger.py:265] completed step: 3, seconds: 0.739, TFLOP/s/device: 0.105, Tokens/s/device: 1385.908, total_weights: 1024, loss: 10.757
I1204 01:45:29.810529 140545512348544 metric_logger.py:265] completed step: 4, seconds: 0.697, TFLOP/s/device: 0.111, Tokens/s/device: 1468.326, total_weights: 1024, loss: 10.676
"""


def test_maxtext_steps_are_parsed_and_warm_up_steps_left_out():
    from lowres.bench import compare

    steps = compare.parse_maxtext_log(MAXTEXT_LOG)
    assert [s["step"] for s in steps] == [0, 1, 2, 3, 4]
    assert steps[2] == {"step": 2, "seconds": 0.744, "tflops_per_device": 0.104, "tokens_per_sec": 1375.457}
    tokens = train_bench.get_shape("maxtext-ref").tokens_per_step()
    assert tokens == 1024  # batch 4 x 256, MaxText's total_weights above
    record = compare.maxtext_record(steps, tokens)
    assert record["timed_steps"] == 3 and record["step_time_median_s"] == 0.739  # steps 0-1 compile and warm up
    assert record["tokens_per_sec"] == pytest.approx(1024 / 0.739)
    with pytest.raises(ValueError, match="none after the 2 warm-up steps"):
        compare.maxtext_record(steps[:2], tokens)


def test_compare_summary_takes_medians_over_rounds_and_checks_each_target():
    from lowres.bench import compare

    def run(rate, flops=1e9, tokens=1000):
        return {"tokens_per_sec": rate, "step_time_median_s": tokens / rate, "flops_per_step": flops}

    rounds = [
        {compare.PEER_LABEL: run(1000), "lowres maxtext-ref synthetic": run(1400), "lowres maxtext-ref real": run(1300),
         "lowres t5-ref synthetic": run(2000, flops=2e9), "lowres t5-ref real": run(1700, flops=2e9)},
        {compare.PEER_LABEL: run(900), "lowres maxtext-ref synthetic": run(1200), "lowres maxtext-ref real": run(1100),
         "lowres t5-ref synthetic": run(1800, flops=2e9), "lowres t5-ref real": {"error": "timed out"}},
    ]
    rows, ratios = compare.summarize(rounds, peaks=[10e9, 20e9, 30e9])
    by_case = {row["case"]: row for row in rows}
    assert by_case[compare.PEER_LABEL]["tokens_per_sec"] == 950  # median of the rounds
    assert by_case["lowres maxtext-ref synthetic"]["tokens_per_sec_runs"] == [1400, 1200]
    assert by_case["lowres t5-ref real"]["tokens_per_sec_runs"] == [1700]  # the failed round is left out
    # MFU against the median peak (20 GFLOP/s) and the median step time of the rounds
    maxtext_ref_step = (1000 / 1400 + 1000 / 1200) / 2
    assert by_case["lowres maxtext-ref synthetic"]["mfu"] == pytest.approx(1e9 / maxtext_ref_step / 20e9)
    value = {r["ratio"]: r for r in ratios}
    versus = value["lowres / MaxText tokens/s, maxtext-ref synthetic"]
    assert versus["value"] == pytest.approx(1300 / 950) and versus["met"] is True  # 1.37 >= 1.25
    real = value["lowres real UL2 / synthetic, t5-ref"]
    assert real["value"] == pytest.approx(1700 / 1900) and real["met"] is False  # 0.89 < 0.9
    t5_ref_step = (1000 / 2000 + 1000 / 1800) / 2
    assert value["t5-ref MFU / maxtext-ref MFU (synthetic)"]["value"] == pytest.approx(2 * maxtext_ref_step / t5_ref_step)


def test_compare_without_maxtext_is_one_line_naming_what_to_install(capsys, monkeypatch, tmp_path):
    from lowres import cli

    monkeypatch.delenv("LOWRES_MAXTEXT_PYTHON", raising=False)
    assert cli.main(["bench", "compare"]) == 2
    assert "pass --peer_python PATH or set LOWRES_MAXTEXT_PYTHON" in capsys.readouterr().err
    assert cli.main(["bench", "compare", "--peer_python", sys.executable]) == 2  # lowres's venv has no maxtext
    err = capsys.readouterr().err
    assert f"--peer_python {sys.executable}: cannot import maxtext" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["bench", "compare", "--peer_python", str(tmp_path / "missing" / "python")]) == 2
    assert f"--peer_python {tmp_path / 'missing' / 'python'}: cannot run it" in capsys.readouterr().err
    assert cli.main(["bench", "compare", "--rounds", "0"]) == 2
    assert "--rounds and --steps must be at least 1, got 0 and 20" in capsys.readouterr().err
    assert cli.main(["bench", "compare", "--shape", "t5-ref"]) == 2
    assert "bench compare runs fixed cases" in capsys.readouterr().err
    assert cli.main(["bench", "compare", "--peer", "levanter"]) == 2
    assert "--peer 'levanter' is not offered" in capsys.readouterr().err
    assert cli.main(["bench", "train", "--rounds", "3"]) == 2
    assert "apply to `lowres bench compare` only" in capsys.readouterr().err
