"""The cases of `lowres bench` and `all`, which runs each case in its own process (clean peak RSS)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from lowres.bench import report
from lowres.errors import UsageError

CASES = ("train", "data", "checkpoint", "scale", "decode", "compare", "all")
SUMMARY_COLUMNS = ("case", "shape", "tokens_per_sec", "mfu", "mfu_per_cpu_second", "tflops_per_device",
                   "step_time_median_s", "peak_rss_mb", "wall_s", "cpu_s", "note")


@dataclasses.dataclass(frozen=True)
class Options:
    """What the command line asked for; None means the case's default."""

    shape: str | None = None
    steps: int | None = None
    synthetic: bool = False
    trainer_tokens_per_sec: float | None = None
    peak_size: int = 2048
    time_limit_s: float | None = None
    objective: str | None = None
    architecture: str | None = None
    parts: tuple[str, ...] | None = None  # data: which parts (lowres.bench.data.PARTS)
    executors: tuple[str, ...] | None = None  # data: indexed, seqio
    flores_dir: str | None = None
    plot: str | None = None  # data: the languages curve's PNG
    dtype: str | None = None  # train: compute dtype instead of the shape's (parameters stay float32)
    attention: str | None = None  # train: attention implementation instead of the shape's
    peer: str | None = None  # compare: the framework run side by side
    peer_python: str | None = None  # compare: its interpreter
    rounds: int | None = None  # compare: interleaved rounds


def decode_available() -> bool:
    """The decode case lives in lowres/bench/decode.py (the inference work); absent means not offered."""
    return importlib.util.find_spec("lowres.bench.decode") is not None


def run_case(case: str, options: Options, log: Callable[[str], None]) -> tuple[dict[str, Any], str]:
    """Runs one case in this process; returns its JSON record and its table."""
    if case == "train":
        from lowres.bench import train

        shape = train.with_model_options(train.get_shape(options.shape or "maxtext-ref"),
                                         dtype=options.dtype, attention=options.attention)
        record = train.run(shape, steps=options.steps or 20, synthetic=options.synthetic,
                           peak_size=options.peak_size, log=log)
        return record, report.table([record], train.TABLE_COLUMNS)
    if case == "data":
        from lowres.bench import data, data_scale

        if options.shape not in (None, "quickstart"):
            raise UsageError(f"bench data measures the quickstart shape only, not --shape={options.shape}")
        chosen = {"objectives": (options.objective,) if options.objective else data.OBJECTIVES,
                  "architectures": (options.architecture,) if options.architecture else data.ARCHITECTURES}
        record = data.run(options.steps or 200, **chosen, trainer_tokens_per_sec=options.trainer_tokens_per_sec,
                          parts=options.parts or data.PARTS, executors=options.executors or data_scale.EXECUTORS,
                          flores_dir=options.flores_dir or data.DEFAULT_FLORES_DIR, plot=options.plot, log=log)
        return record, data.tables(record)
    if case == "checkpoint":
        from lowres.bench import checkpoint

        record = checkpoint.run(options.shape or "gpt2-small", repeats=options.steps or 3, log=log)
        return record, report.table([record], checkpoint.TABLE_COLUMNS)
    if case == "scale":
        from lowres.bench import scale

        presets = options.shape.split(",") if options.shape else None
        record = scale.run(presets, steps=options.steps or 1, timeout_s=options.time_limit_s or 600,
                           peak_size=options.peak_size, log=log)
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
    if case == "compare":
        from lowres.bench import compare

        record = compare.run(options.peer or "maxtext", options.peer_python,
                             rounds=2 if options.rounds is None else options.rounds,
                             steps=options.steps or 20, log=log)
        return record, compare.tables(record)
    if case == "all":
        return run_all(options, log)
    raise UsageError(f"unknown bench case {case!r}; choose one of {CASES}")


@dataclasses.dataclass(frozen=True)
class Step:
    """One case of `all`: its `lowres bench` arguments and the wall-clock seconds it may take."""

    argv: tuple[str, ...]
    timeout_s: float


# Per-case limits for `all` on 2 idle CPU cores, about 1.2-1.5x each case's measured wall time there
# (maxtext-ref 70-74 s, t5-ref 78-84, quickstart 48-51, data 47-49, checkpoint 28-29, scale 76-77, decode
# 57-59: 7 minutes in all); they sum to under 10 minutes. Training shapes run on synthetic batches
# (the data case measures the quickstart's pipeline separately); scale trains 1 warm-up + 1 step.
ALL_BUDGET_S = 600.0


def all_plan(options: Options) -> list[Step]:
    """The cases `lowres bench all` runs, in order, with their time limits: `options.time_limit_s`
    (default ALL_BUDGET_S) shared in fixed proportions, so a loaded machine can be given longer."""
    stretch = (options.time_limit_s or ALL_BUDGET_S) / ALL_BUDGET_S
    steps = ["--steps", str(options.steps)] if options.steps else []
    plan = [
        Step(("train", "--shape", "maxtext-ref", "--synthetic", *steps), 90),
        Step(("train", "--shape", "t5-ref", "--synthetic", *steps), 100),
        Step(("train", "--shape", "quickstart", "--synthetic", *steps), 60),
        # The quickstart's own stream (gin_configs/quickstart.gin) on the default executor; `lowres bench
        # data` alone measures both executors, FLORES-200 start-up, the languages curve and resumes.
        Step(("data", "--objective", "r_and_s", "--architecture", "encoder_decoder", "--parts", "steady",
              "--executors", "indexed"), 85),
        Step(("checkpoint", "--shape", "maxtext-ref", "--steps", "2"), 40),
        Step(("scale", "--steps", "1", "--time_limit_s", f"{110 * stretch:.0f}"), 120),
    ]
    if decode_available():
        plan.append(Step(("decode", "--steps", "1"), 75))
    return [dataclasses.replace(step, timeout_s=step.timeout_s * stretch) for step in plan]


def _children_cpu_s() -> float:
    """CPU-seconds (user + system) of finished child processes: a case's cost, steadier than its wall
    time when other jobs share the cores."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def subprocess_case(argv: list[str], log: Callable[[str], None], timeout_s: float | None = None) -> dict[str, Any]:
    """Runs `lowres bench ... --json` in a child process; returns its JSON record (or an error record)."""
    command = [sys.executable, "-m", "lowres.cli", "bench", *argv, "--json"]
    log(f"[all] {' '.join(['lowres', 'bench', *argv])}" + (f" (limit {timeout_s:.0f}s)" if timeout_s else ""))
    start, cpu_start = time.perf_counter(), _children_cpu_s()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired as expired:
        out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        for line in out.splitlines():
            if line.startswith("["):
                log("    " + line)
        error = f"timed out after {timeout_s:.0f}s (load average {os.getloadavg()[0]:.1f})"
        log(f"[all] {' '.join(argv)}: {error}")
        return report.result(argv[0], error=error, wall_s=time.perf_counter() - start,
                             cpu_s=_children_cpu_s() - cpu_start, argv=list(argv))
    for line in done.stdout.splitlines()[:-1]:
        if line.startswith("["):
            log("    " + line)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not last.startswith("{"):
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"[all] {' '.join(argv)} failed: {error}")
        return report.result(argv[0], error=error, wall_s=time.perf_counter() - start,
                             cpu_s=_children_cpu_s() - cpu_start, argv=list(argv))
    record = json.loads(last)
    record["wall_s"] = time.perf_counter() - start
    record["cpu_s"] = _children_cpu_s() - cpu_start
    record["argv"] = list(argv)
    return record


def _note(r: dict[str, Any]) -> str:
    if r.get("error"):
        return r["error"]
    if r["case"] == "data":
        return f"ratio to trainer {r.get('ratio_min', 0):.1f}"
    if r["case"] == "checkpoint":
        return (f"restore {r.get('restore_mb_per_s', 0):,.0f} MB/s = {r.get('restore_fraction_of_copy', 0):.0%} of copy"
                f" (cold {r.get('restore_cold_fraction_of_copy', 0):.0%})")
    if r["case"] == "scale":
        return f"largest: {r.get('largest_preset')} ({(r.get('largest_params') or 0) / 1e6:.0f}M params)"
    return ""


def run_all(options: Options, log: Callable[[str], None], plan: list[Step] | None = None) -> tuple[dict[str, Any], str]:
    """Every case of `plan` (default `all_plan`), each in its own process; the data case is given the
    quickstart trainer's rate when that ran first."""
    start = time.perf_counter()
    results = []
    plan = all_plan(options) if plan is None else plan
    for step in plan:
        argv = list(step.argv)
        quickstart = next((r.get("tokens_per_sec") for r in results if r.get("shape") == "quickstart"), None)
        if argv[0] == "data" and quickstart:
            argv += ["--trainer_tokens_per_sec", str(quickstart)]
        results.append(subprocess_case(argv, log, step.timeout_s))
    rows = [{**{c: r.get(c) for c in SUMMARY_COLUMNS}, "shape": r.get("shape") or r.get("largest_preset"),
             "note": _note(r)} for r in results]
    record = report.result("all", **report.machine_fields(), peak_rss_mb=max(
        (r["peak_rss_mb"] for r in results if r.get("peak_rss_mb")), default=None),
        wall_s=time.perf_counter() - start, cpu_s=sum(r["cpu_s"] for r in results),
        time_limit_s=sum(step.timeout_s for step in plan), results=results)
    return record, (report.table(rows, SUMMARY_COLUMNS) + f"\nwall time {record['wall_s']:.0f}s, "
                    f"{record['cpu_s']:.0f} CPU-seconds, load average {record['load_average']}")
