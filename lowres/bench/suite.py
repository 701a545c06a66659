"""The cases of `lowres bench` and `all`, which runs each case in its own process (clean peak RSS)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from lowres.bench import report

CASES = ("train", "data", "checkpoint", "scale", "decode", "all")
ALL_TRAIN_SHAPES = ("maxtext-ref", "t5-ref", "quickstart")
SUMMARY_COLUMNS = ("case", "shape", "tokens_per_sec", "mfu", "tflops_per_device", "step_time_median_s",
                   "peak_rss_mb", "note")


@dataclasses.dataclass(frozen=True)
class Options:
    """What the command line asked for; None means the case's default."""

    shape: str | None = None
    steps: int | None = None
    synthetic: bool = False
    trainer_tokens_per_sec: float | None = None
    peak_size: int = 2048


def decode_available() -> bool:
    """The decode case lives in lowres/bench/decode.py (the inference work); absent means not offered."""
    return importlib.util.find_spec("lowres.bench.decode") is not None


def run_case(case: str, options: Options, log: Callable[[str], None]) -> tuple[dict[str, Any], str]:
    """Runs one case in this process; returns its JSON record and its table."""
    if case == "train":
        from lowres.bench import train

        shape = train.get_shape(options.shape or "maxtext-ref")
        record = train.run(shape, steps=options.steps or 20, synthetic=options.synthetic,
                           peak_size=options.peak_size, log=log)
        return record, report.table([record], train.TABLE_COLUMNS)
    if case == "data":
        from lowres.bench import data

        if options.shape not in (None, "quickstart"):
            raise ValueError(f"bench data measures the quickstart shape only, not --shape={options.shape}")
        record = data.run(options.steps or 200, trainer_tokens_per_sec=options.trainer_tokens_per_sec, log=log)
        lines = [report.table(record["rows"], data.TABLE_COLUMNS),
                 f"trainer consumption (quickstart): {record['trainer_tokens_per_sec']:,.0f} tokens/s "
                 f"({record['trainer_source']}); worst ratio {record['ratio_min']:.1f} (target >= {data.TARGET_RATIO:g})"]
        return record, "\n".join(lines)
    if case == "checkpoint":
        from lowres.bench import checkpoint

        record = checkpoint.run(options.shape or "gpt2-small", repeats=options.steps or 3, log=log)
        return record, report.table([record], checkpoint.TABLE_COLUMNS)
    if case == "scale":
        from lowres.bench import scale

        presets = options.shape.split(",") if options.shape else None
        record = scale.run(presets, steps=options.steps or 2, log=log)
        return record, report.table(record["rows"], scale.TABLE_COLUMNS)
    if case == "decode":
        if not decode_available():
            raise ValueError("bench decode needs lowres/bench/decode.py (the inference work), which is not installed")
        from lowres.bench import decode  # type: ignore[attr-defined]

        kwargs = {k: v for k, v in (("shape", options.shape), ("steps", options.steps)) if v is not None}
        record = decode.run(**kwargs, log=log)
        if callable(getattr(decode, "table", None)) and "rows" in record:
            return record, decode.table(record["rows"])
        return record, report.field_table(record)
    if case == "all":
        return run_all(options, log)
    raise ValueError(f"unknown bench case {case!r}; choose one of {CASES}")


def _subprocess_case(argv: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    """Runs `lowres bench ... --json` in a child process; returns its JSON record (or an error record)."""
    command = [sys.executable, "-m", "lowres.cli", "bench", *argv, "--json"]
    log(f"[all] {' '.join(['lowres', 'bench', *argv])}")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    for line in done.stdout.splitlines()[:-1]:
        if line.startswith("["):
            log("    " + line)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not last.startswith("{"):
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"[all] {' '.join(argv)} failed: {error}")
        return report.result(argv[0], error=error, wall_s=time.perf_counter() - start)
    record = json.loads(last)
    record["wall_s"] = time.perf_counter() - start
    return record


def run_all(options: Options, log: Callable[[str], None]) -> tuple[dict[str, Any], str]:
    """Every case, each in its own process; the data case reuses the quickstart trainer rate."""
    start = time.perf_counter()
    extra = ["--synthetic"] if options.synthetic else []
    steps = ["--steps", str(options.steps)] if options.steps else []
    results = [_subprocess_case(["train", "--shape", name, *steps, *extra], log) for name in ALL_TRAIN_SHAPES]
    quickstart = results[-1].get("tokens_per_sec")
    data_args = ["data"] + (["--trainer_tokens_per_sec", str(quickstart)] if quickstart else [])
    results.append(_subprocess_case(data_args, log))
    results.append(_subprocess_case(["checkpoint", "--steps", "2"], log))
    results.append(_subprocess_case(["scale"], log))
    if decode_available():
        results.append(_subprocess_case(["decode"], log))
    rows = []
    for r in results:
        note = r.get("error") or {
            "data": lambda: f"ratio to trainer {r.get('ratio_min', 0):.1f}",
            "checkpoint": lambda: f"restore {r.get('restore_mb_per_s', 0):,.0f} MB/s = "
            f"{r.get('restore_fraction_of_copy', 0):.0%} of copy",
            "scale": lambda: f"largest: {r.get('largest_preset')}",
        }.get(r["case"], lambda: "")()
        rows.append({**{c: r.get(c) for c in SUMMARY_COLUMNS}, "shape": r.get("shape") or r.get("largest_preset"),
                     "note": note})
    record = report.result("all", **report.machine_fields(), peak_rss_mb=max(
        (r["peak_rss_mb"] for r in results if r.get("peak_rss_mb")), default=None),
        wall_s=time.perf_counter() - start, results=results)
    return record, report.table(rows, SUMMARY_COLUMNS)
