"""`lowres bench data`: the input pipeline's tokens/s per CPU core against the trainer's consumption.

Per core means per CPU-second the process spends (all threads, `time.process_time`), so a
pipeline using both cores is not credited twice. The stream is the trainer's: a temperature
mixture over all 20 built-in languages, packed, at the quickstart lengths and batch.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lowres.bench import report
from lowres.bench import train as train_bench
from lowres.errors import UsageError

OBJECTIVES = ("ul2", "r_and_s")
ARCHITECTURES = ("encoder_decoder", "decoder_only")
TARGET_RATIO = 10.0
# A ul2 mixture has 140 tasks, the rarest drawn for about 1 example in 400; each fills its shuffle
# buffer when first drawn. After 250 batches (about 2,000 examples) nearly all have, so the timed
# batches measure the steady state rather than one-off buffer fills (reported as warm-up).
WARMUP_BATCHES = 250


def measure_pipeline(shape: train_bench.Shape, num_batches: int, warmup_batches: int = WARMUP_BATCHES) -> dict[str, Any]:
    """Start-up time, then wall and CPU time for `num_batches` batches of the shape's real stream.

    The first `warmup_batches` are not timed (their wall and CPU time are reported): each task fills
    its shuffle buffer the first time the mixture samples it, a one-off cost that would otherwise
    dominate a short measurement.
    """
    start, start_cpu = time.perf_counter(), time.process_time()
    batches = train_bench.real_batches(shape)
    first = next(batches)
    startup, startup_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    for _ in range(warmup_batches):
        next(batches)
    warmup = time.perf_counter() - start - startup
    warmup_cpu = time.process_time() - start_cpu - startup_cpu
    wall0, cpu0 = time.perf_counter(), time.process_time()
    slots = real = 0
    for _ in range(num_batches):
        batch = next(batches)
        for name, array in batch.items():
            if name.endswith("_target_tokens") or name == "encoder_input_tokens":
                slots += array.size
                real += int(np.count_nonzero(array))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    expected = num_batches * shape.tokens_per_step()
    if slots != expected:
        raise AssertionError(f"pipeline delivered {slots} token slots, expected {expected} for {shape}")
    del first
    return {
        "objective": shape.objective,
        "architecture": shape.architecture,
        "batches": num_batches,
        "tokens": slots,
        "nonpad_fraction": real / slots,
        "startup_s": startup,
        "startup_cpu_s": startup_cpu,
        "warmup_batches": warmup_batches,
        "warmup_s": warmup,
        "warmup_cpu_s": warmup_cpu,
        "wall_s": wall,
        "cpu_s": cpu,
        "tokens_per_sec": slots / wall,
        "tokens_per_sec_per_core": slots / max(cpu, 1e-9),
        "load_average": os.getloadavg()[0],  # the machine may be shared: wall rates depend on it
    }


def run(num_batches: int = 200, *, objectives: tuple[str, ...] = OBJECTIVES,
        architectures: tuple[str, ...] = ARCHITECTURES, trainer_tokens_per_sec: float | None = None,
        trainer_steps: int = 10, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Each (objective, architecture) asked for (default: all four) at the quickstart shape, and the
    ratio to the trainer's rate.

    Without `trainer_tokens_per_sec` the trainer's consumption is measured here (quickstart shape,
    synthetic batches so that only the step is timed).
    """
    for name, chosen, known in (("objective", objectives, OBJECTIVES), ("architecture", architectures, ARCHITECTURES)):
        unknown = sorted(set(chosen) - set(known))
        if unknown or not chosen:
            raise UsageError(f"bench data: unknown {name} {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(known)}")
    base = train_bench.quickstart_shape()
    rows = []
    for objective in objectives:
        for architecture in architectures:
            shape = dataclasses.replace(base, objective=objective, architecture=architecture)
            row = measure_pipeline(shape, num_batches)
            log(f"[data {objective}/{architecture}] {row['tokens_per_sec_per_core']:,.0f} tokens/s per core "
                f"({row['tokens_per_sec']:,.0f}/s wall, start-up {row['startup_s']:.1f}s, "
                f"load average {row.get('load_average', 0):.1f})")
            rows.append(row)
    trainer_source = "given"
    if trainer_tokens_per_sec is None:
        trained = train_bench.run(base, steps=trainer_steps, synthetic=True, log=log)
        trainer_tokens_per_sec, trainer_source = trained["tokens_per_sec"], "measured in this run (synthetic batches)"
    for row in rows:
        row["ratio_to_trainer"] = row["tokens_per_sec_per_core"] / trainer_tokens_per_sec
    worst = min(rows, key=lambda r: r["tokens_per_sec_per_core"])
    return report.result(
        "data",
        tokens_per_sec=worst["tokens_per_sec_per_core"],
        peak_rss_mb=report.peak_rss_mb(),
        **report.machine_fields(),
        shape="quickstart",
        languages=20,
        tokens_per_sec_per_core_min=worst["tokens_per_sec_per_core"],
        trainer_tokens_per_sec=trainer_tokens_per_sec,
        trainer_source=trainer_source,
        ratio_min=worst["ratio_to_trainer"],
        target_ratio=TARGET_RATIO,
        meets_target=worst["ratio_to_trainer"] >= TARGET_RATIO,
        rows=rows,
    )


TABLE_COLUMNS = ("objective", "architecture", "tokens_per_sec_per_core", "tokens_per_sec", "nonpad_fraction",
                 "startup_s", "startup_cpu_s", "warmup_s", "warmup_cpu_s",
                 "load_average", "ratio_to_trainer")
