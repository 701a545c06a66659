"""`lowres bench compare --peer=maxtext`: lowres and MaxText trained side by side on one machine.

Every case runs in its own fresh process, interleaved round by round (the order alternates between
rounds), so both frameworks see the same machine state; only the ratios mean anything across
machines. Per round: MaxText on maxtext-ref (synthetic batches, the command below), lowres on
maxtext-ref synthetic and on its real UL2 stream, and lowres on t5-ref (an encoder-decoder at the same
widths, which no JAX peer offers) synthetic and real. MFU of every case is taken against one peak,
the 2048² matmul measured in this process before each round.

MaxText lives in its own interpreter (it needs Python 3.12): `--peer_python` or LOWRES_MAXTEXT_PYTHON,
e.g. a venv made with `python3.12 -m venv mt && mt/bin/pip install "maxtext[tpu]==0.2.5"`.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lowres.bench import report
from lowres.errors import UsageError

PEERS = ("maxtext",)
PEER_PYTHON_ENV = "LOWRES_MAXTEXT_PYTHON"
WARMUP_STEPS = 2  # MaxText's first steps include compilation and the first dispatches
MAXTEXT_TIMEOUT_S = 600  # one MaxText run took about 25 s here

# MaxText's train command for lowres's maxtext-ref shape (decoder-only, d_model 256, 4 layers of 4x64
# heads, gated SiLU d_ff 1024, vocabulary 32000, sequence 256, batch 4, float32).
MAXTEXT_SETTINGS = (
    "hardware=cpu", "skip_jax_distributed_system=true", "dataset_type=synthetic", "enable_checkpointing=false",
    "base_emb_dim=256", "base_num_query_heads=4", "base_num_kv_heads=4", "base_mlp_dim=1024",
    "base_num_decoder_layers=4", "head_dim=64", "max_target_length=256", "per_device_batch_size=4",
    "attention=dot_product", "dtype=float32",
)  # fmt: skip
MAXTEXT_STEP = re.compile(r"completed step: (\d+), seconds: ([0-9.]+), TFLOP/s/device: ([0-9.]+), "
                          r"Tokens/s/device: ([0-9.]+)")  # fmt: skip

# (label, lowres bench train arguments): each round runs all of these and the peer.
LOWRES_CASES = (
    ("lowres maxtext-ref synthetic", ("--shape", "maxtext-ref", "--synthetic")),
    ("lowres maxtext-ref real", ("--shape", "maxtext-ref")),
    ("lowres t5-ref synthetic", ("--shape", "t5-ref", "--synthetic")),
    ("lowres t5-ref real", ("--shape", "t5-ref")),
)
PEER_LABEL = "maxtext maxtext-ref synthetic"
TABLE_COLUMNS = ("case", "tokens_per_sec", "tokens_per_sec_runs", "mfu", "step_time_median_s")
RATIO_COLUMNS = ("ratio", "value", "target", "met")


def find_maxtext(given: str | None) -> tuple[str, Path]:
    """MaxText's interpreter (`given`, else LOWRES_MAXTEXT_PYTHON) and its configs/base.yml; one clear line
    when neither works."""
    python = given or os.environ.get(PEER_PYTHON_ENV, "")
    if not python:
        raise UsageError(f"bench compare needs MaxText's interpreter: pass --peer_python PATH or set {PEER_PYTHON_ENV} "
                         '(a Python 3.12 venv with `pip install "maxtext[tpu]==0.2.5"`)')
    try:
        found = subprocess.run([python, "-c", "import maxtext, os; print(os.path.dirname(maxtext.__file__))"],
                               capture_output=True, text=True, check=False)  # fmt: skip
    except OSError as error:
        raise UsageError(f"--peer_python {python}: cannot run it ({error.strerror}); give the python of a venv "
                         'with `pip install "maxtext[tpu]==0.2.5"`') from None
    if found.returncode != 0:
        raise UsageError(f"--peer_python {python}: cannot import maxtext there ({_last_line(found.stderr)}); "
                         'install it with `pip install "maxtext[tpu]==0.2.5"` in a Python 3.12 venv')
    return python, Path(found.stdout.strip()) / "configs" / "base.yml"


def versions(python: str, packages: Sequence[str]) -> dict[str, str]:
    """The installed versions of `packages` in the interpreter `python` (recorded beside its numbers)."""
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{p: m.version(p) for p in {list(packages)!r}}} | {{'python': sys.version.split()[0]}}))")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": _last_line(done.stderr)}


def maxtext_command(python: str, base_config: Path, steps: int, run_dir: Path) -> list[str]:
    return [python, "-m", "maxtext.trainers.pre_train.train", str(base_config),
            f"run_name=lowres-compare-{time.time_ns()}", f"base_output_directory={run_dir}", f"steps={steps}",
            *MAXTEXT_SETTINGS]  # fmt: skip


def parse_maxtext_log(text: str) -> list[dict[str, float]]:
    """MaxText's per-step lines: step, seconds, TFLOP/s per device, tokens/s per device."""
    return [{"step": int(m[1]), "seconds": float(m[2]), "tflops_per_device": float(m[3]),
             "tokens_per_sec": float(m[4])} for m in MAXTEXT_STEP.finditer(text)]  # fmt: skip


def maxtext_record(steps: list[dict[str, float]], tokens_per_step: int) -> dict[str, Any]:
    """Median step time after WARMUP_STEPS, as tokens/s (the same statistic lowres bench train reports)."""
    timed = [s["seconds"] for s in steps if s["step"] >= WARMUP_STEPS]
    if not timed:
        raise ValueError(f"MaxText logged {len(steps)} steps, none after the {WARMUP_STEPS} warm-up steps")
    median = statistics.median(timed)
    return {"step_time_median_s": median, "tokens_per_sec": tokens_per_step / median, "timed_steps": len(timed)}


def run_maxtext(python: str, base_config: Path, steps: int, run_dir: Path,
                log: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    from lowres.bench.train import get_shape

    command = maxtext_command(python, base_config, steps + WARMUP_STEPS, run_dir)
    log(f"[compare] {PEER_LABEL}: MaxText, {steps + WARMUP_STEPS} steps")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "DECOUPLE_GCLOUD": "TRUE"}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=run_dir,
                              timeout=MAXTEXT_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"MaxText ran past {MAXTEXT_TIMEOUT_S} s", "wall_s": time.perf_counter() - start}
    steps_logged = parse_maxtext_log(done.stdout + done.stderr)
    if done.returncode != 0 or not steps_logged:
        return {"error": f"MaxText exited {done.returncode}: {_last_line(done.stderr)}", "wall_s": time.perf_counter() - start}
    shape = get_shape("maxtext-ref")
    record = maxtext_record(steps_logged, shape.tokens_per_step())
    return {**record, "flops_per_step": shape.flops_per_step(), "wall_s": time.perf_counter() - start}


def run_lowres(argv: Sequence[str], steps: int, log: Callable[[str], None]) -> dict[str, Any]:
    from lowres.bench.suite import subprocess_case

    return subprocess_case(["train", *argv, "--steps", str(steps)], log)


def summarize(rounds: list[dict[str, dict[str, Any]]], peaks: list[float]) -> tuple[list[dict], list[dict]]:
    """Per-case rows (median tokens/s over rounds, MFU against the median in-run peak) and the ratios
    the performance issue asks for, each with its target."""
    peak = statistics.median(peaks)
    rows, rates = [], {}
    for label in [PEER_LABEL] + [label for label, _ in LOWRES_CASES]:
        runs = [r[label] for r in rounds if label in r and not r[label].get("error")]
        if not runs:
            errors = [r[label]["error"] for r in rounds if label in r]
            rows.append({"case": label, "error": errors[-1] if errors else "not run"})
            continue
        rate = statistics.median(r["tokens_per_sec"] for r in runs)
        step = statistics.median(r["step_time_median_s"] for r in runs)
        rates[label] = rate
        rows.append({"case": label, "tokens_per_sec": rate, "step_time_median_s": step,
                     "tokens_per_sec_runs": [round(r["tokens_per_sec"], 1) for r in runs],
                     "mfu": runs[0]["flops_per_step"] / step / peak})  # fmt: skip
    mfu = {row["case"]: row.get("mfu") for row in rows}

    def ratio(name: str, a: float | None, b: float | None, target: float) -> dict[str, Any]:
        value = a / b if a and b else None
        return {"ratio": name, "value": value, "target": f">= {target}", "met": None if value is None else value >= target}

    ratios = [
        ratio("lowres / MaxText tokens/s, maxtext-ref synthetic", rates.get("lowres maxtext-ref synthetic"),
              rates.get(PEER_LABEL), 1.25),
        ratio("lowres real UL2 / synthetic, maxtext-ref", rates.get("lowres maxtext-ref real"),
              rates.get("lowres maxtext-ref synthetic"), 0.9),
        ratio("lowres real UL2 / synthetic, t5-ref", rates.get("lowres t5-ref real"),
              rates.get("lowres t5-ref synthetic"), 0.9),
        ratio("t5-ref MFU / maxtext-ref MFU (synthetic)", mfu.get("lowres t5-ref synthetic"),
              mfu.get("lowres maxtext-ref synthetic"), 1.0),
    ]  # fmt: skip
    return rows, ratios


def run(peer: str = "maxtext", python: str | None = None, rounds: int = 2, steps: int = 20,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """`rounds` interleaved rounds of every case; the record holds every run, the rows and the ratios."""
    if peer not in PEERS:
        raise UsageError(f"--peer {peer!r} is not offered; choose one of {', '.join(PEERS)}")
    if rounds < 1 or steps < 1:
        raise UsageError(f"--rounds and --steps must be at least 1, got {rounds} and {steps}")
    python, base_config = find_maxtext(python)
    from lowres.training import peak as peak_lib

    results, peaks = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lowres-compare-") as work:
        for index in range(rounds):
            peak_flops = peak_lib.measure_matmul_peak(size=2048)
            peaks.append(peak_flops)
            log(f"[compare] round {index + 1}/{rounds}: matmul peak {peak_flops / 1e9:.1f} GFLOP/s, "
                f"load average {os.getloadavg()[0]:.2f}")
            cases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                (label, lambda argv=argv: run_lowres(argv, steps, log)) for label, argv in LOWRES_CASES]
            cases.insert(0, (PEER_LABEL, lambda: run_maxtext(python, base_config, steps, Path(work), log)))
            if index % 2:
                cases.reverse()
            results.append({label: measure() for label, measure in cases})
            elapsed = time.perf_counter() - start
            log(f"[compare] round {index + 1}/{rounds} done in {elapsed:.0f}s; "
                f"ETA {elapsed / (index + 1) * (rounds - index - 1):.0f}s")
    rows, ratios = summarize(results, peaks)
    return report.result("compare", peer=peer, peer_versions=versions(python, ("maxtext", "jax", "jaxlib", "flax")),
                         lowres_versions=versions(sys.executable, ("jax", "jaxlib", "flax")), rounds=rounds, steps=steps,
                         peak_gflops=[p / 1e9 for p in peaks], **report.machine_fields(), rows=rows,
                         ratios=ratios, runs=results, wall_s=time.perf_counter() - start)  # fmt: skip


def tables(record: dict[str, Any]) -> str:
    columns = TABLE_COLUMNS + (("error",) if any(row.get("error") for row in record["rows"]) else ())
    return report.table(record["rows"], columns) + "\n\n" + report.table(record["ratios"], RATIO_COLUMNS)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
