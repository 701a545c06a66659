"""`lowres bench data`: the input pipeline against the trainer, both executors side by side.

Parts (`--parts`, default all):
* steady: tokens/s per CPU core of the trainer's stream (a temperature mixture over all 20 built-in
  languages, packed, quickstart lengths and batch) for each objective, architecture and executor
  (`indexed`: the token cache sampled by index; `seqio`: seqio's tf.data pipeline over the same
  registered tasks), against the trainer's consumption. Per core means per CPU-second the process
  spends (all threads, `time.process_time`), so a pipeline using both cores is not credited twice.
* flores, languages, resume: start-up, memory and resume cost (lowres.bench.data_scale), each
  measured in a fresh process.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from lowres.bench import data_scale, report
from lowres.bench import train as train_bench
from lowres.errors import UsageError

OBJECTIVES = ("ul2", "r_and_s")
PARTS = ("steady", "flores", "languages", "resume")
DEFAULT_FLORES_DIR = "../shared/data/flores200/dev"
ARCHITECTURES = ("encoder_decoder", "decoder_only")
TARGET_RATIO = 10.0
# A ul2 mixture has 140 tasks, the rarest drawn for about 1 example in 400; each fills its shuffle
# buffer when first drawn. After 250 batches (about 2,000 examples) nearly all have, so the timed
# batches measure the steady state rather than one-off buffer fills (reported as warm-up).
WARMUP_BATCHES = 250


def measure_pipeline(shape: train_bench.Shape, num_batches: int, warmup_batches: int = WARMUP_BATCHES,
                     executor: str = "indexed") -> dict[str, Any]:
    """Start-up time, then wall and CPU time for `num_batches` batches of the shape's real stream.

    The first `warmup_batches` are not timed (their wall and CPU time are reported): each task fills
    its shuffle buffer the first time the mixture samples it, a one-off cost that would otherwise
    dominate a short measurement.
    """
    start, start_cpu = time.perf_counter(), time.process_time()
    batches = train_bench.real_batches(shape, pipeline=executor)
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
        "executor": executor,
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
        trainer_steps: int = 10, parts: tuple[str, ...] = PARTS, executors: tuple[str, ...] = data_scale.EXECUTORS,
        flores_dir: str = DEFAULT_FLORES_DIR, languages: tuple[int, ...] = data_scale.CURVE_LANGUAGES,
        work_dir: str | None = None, plot: str | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """The parts asked for (see the module docstring); `plot` is where the languages curve goes (PNG)."""
    for name, chosen, known in (("objective", objectives, OBJECTIVES), ("architecture", architectures, ARCHITECTURES),
                                ("part", parts, PARTS), ("executor", executors, data_scale.EXECUTORS)):
        unknown = sorted(set(chosen) - set(known))
        if unknown or not chosen:
            raise UsageError(f"bench data: unknown {name} {', '.join(unknown) or '(none given)'}; "
                             f"choose from {', '.join(known)}")
    if {"flores", "languages"} & set(parts) and not Path(flores_dir).is_dir():
        raise UsageError(f"bench data: --flores_dir={flores_dir} is not a directory; pass FLORES-200's dev/ "
                         "directory or leave out the flores and languages parts (--parts=steady,resume)")
    base = train_bench.quickstart_shape()
    fields: dict[str, Any] = {"parts": list(parts)}
    work = Path(work_dir) if work_dir else _default_work_dir()
    if "steady" in parts:
        fields.update(_steady(base, num_batches, objectives, architectures, executors, trainer_tokens_per_sec,
                              trainer_steps, log))  # fmt: skip
    ul2 = dataclasses.replace(base, objective="ul2")
    if "flores" in parts:
        rows, vocabulary = data_scale.startup_rows(ul2, f"flores:{Path(flores_dir).resolve()}", work / "flores",
                                                   "flores", executors=executors, log=log)  # fmt: skip
        fields["flores"] = {"rows": rows, "vocabulary": vocabulary, **_flores_targets(rows, fields)}
    if "languages" in parts:
        rows = data_scale.language_rows(ul2, Path(flores_dir).resolve(), work / "languages", languages, log=log)
        png = data_scale.plot_languages(rows, Path(plot) if plot else work / "languages.png")
        fields["languages"] = {"rows": rows, "plot": str(png) if png else None}
        if png:
            log(f"[data] languages curve: {png}")
    if "resume" in parts:
        fields["resume"] = {"rows": data_scale.resume_rows(base, work / "resume", log=log)}
    headline = fields.get("tokens_per_sec_per_core_min")
    return report.result("data", tokens_per_sec=headline, peak_rss_mb=report.peak_rss_mb(), **report.machine_fields(),
                         shape="quickstart", **fields)


def _default_work_dir() -> Path:
    from lowres.data.text.builtin_corpus import default_cache_dir

    return default_cache_dir() / "bench" / "data"


def _steady(base, num_batches, objectives, architectures, executors, trainer_tokens_per_sec, trainer_steps,
            log) -> dict[str, Any]:  # fmt: skip
    rows = []
    for objective in objectives:
        for architecture in architectures:
            for executor in executors:
                shape = dataclasses.replace(base, objective=objective, architecture=architecture)
                row = measure_pipeline(shape, num_batches, executor=executor)
                log(f"[data {objective}/{architecture} {executor}] {row['tokens_per_sec_per_core']:,.0f} tokens/s per "
                    f"core ({row['tokens_per_sec']:,.0f}/s wall, start-up {row['startup_s']:.1f}s, "
                    f"load average {row.get('load_average', 0):.1f})")
                rows.append(row)
    trainer_source = "given"
    if trainer_tokens_per_sec is None:
        trained = train_bench.run(base, steps=trainer_steps, synthetic=True, log=log)
        trainer_tokens_per_sec, trainer_source = trained["tokens_per_sec"], "measured in this run (synthetic batches)"
    for row in rows:
        row["ratio_to_trainer"] = row["tokens_per_sec_per_core"] / trainer_tokens_per_sec
    default = [r for r in rows if r["executor"] == "indexed"] or rows
    worst = min(default, key=lambda r: r["tokens_per_sec_per_core"])
    return {
        "rows": rows,
        "steady_languages": 20,
        "tokens_per_sec_per_core_min": worst["tokens_per_sec_per_core"],
        "trainer_tokens_per_sec": trainer_tokens_per_sec,
        "trainer_source": trainer_source,
        "ratio_min": worst["ratio_to_trainer"],
        "ratio_executor": worst["executor"],
        "target_ratio": TARGET_RATIO,
        "meets_target": worst["ratio_to_trainer"] >= TARGET_RATIO,
    }


# The targets for FLORES-200 x ul2 at the quickstart shape (indexed executor).
FLORES_TARGETS = {"warm_first_batch_s": 60.0, "cold_first_batch_s": 180.0, "peak_rss_mb": 3072.0, "ratio": 10.0}


def _flores_targets(rows: list[dict[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
    indexed = {r["cache"]: r for r in rows if r["executor"] == "indexed" and "error" not in r}
    if set(indexed) != {"cold", "warm"}:
        return {"meets_targets": False}
    trainer = fields.get("trainer_tokens_per_sec")
    ratio = indexed["warm"].get("tokens_per_sec_per_core", 0) / trainer if trainer else None
    checks = {
        "warm_first_batch_s": indexed["warm"]["time_to_first_batch_s"],
        "cold_first_batch_s": indexed["cold"]["time_to_first_batch_s"],
        "peak_rss_mb": max(indexed["cold"]["peak_rss_mb"], indexed["warm"]["peak_rss_mb"]),
        "ratio_to_trainer": ratio,
    }
    met = (checks["warm_first_batch_s"] <= FLORES_TARGETS["warm_first_batch_s"]
           and checks["cold_first_batch_s"] <= FLORES_TARGETS["cold_first_batch_s"]
           and checks["peak_rss_mb"] < FLORES_TARGETS["peak_rss_mb"]
           and (ratio is None or ratio >= FLORES_TARGETS["ratio"]))  # fmt: skip
    return {**checks, "targets": FLORES_TARGETS, "meets_targets": met}


def tables(record: dict[str, Any]) -> str:
    """The printed report: one table per part that ran."""
    lines = []
    if record.get("rows"):
        lines += [report.table(record["rows"], TABLE_COLUMNS),
                  (f"trainer consumption (quickstart): {record['trainer_tokens_per_sec']:,.0f} tokens/s "
                   f"({record['trainer_source']}); worst indexed ratio {record['ratio_min']:.1f} "
                   f"(target >= {TARGET_RATIO:g})")]  # fmt: skip
    if record.get("flores"):
        flores = record["flores"]
        lines += ["", (f"FLORES-200 dev, ul2, quickstart shape (vocabulary trained once: "
                       f"{flores['vocabulary']['vocabulary_s']:.0f} s, not counted)"),
                  report.table(flores["rows"], STARTUP_COLUMNS)]  # fmt: skip
        if "targets" in flores:
            lines.append(f"indexed: warm {flores['warm_first_batch_s']:.1f} s (<= 60), cold "
                         f"{flores['cold_first_batch_s']:.1f} s (<= 180), peak RSS {flores['peak_rss_mb']:,.0f} MiB "
                         f"(< 3072); meets targets: {flores['meets_targets']}")
    if record.get("languages"):
        lines += ["", "synthetic languages (FLORES text under made-up codes), ul2, indexed",
                  report.table(record["languages"]["rows"], ("num_languages", *STARTUP_COLUMNS[1:]))]
    if record.get("resume"):
        lines += ["", "resume: first batch of a stream opened at a step (built-in corpus, quickstart shape)",
                  report.table(record["resume"]["rows"], RESUME_COLUMNS)]
    return "\n".join(lines)


STARTUP_COLUMNS = ("executor", "cache", "time_to_first_batch_s", "prepare_s", "first_batch_s", "imports_s",
                   "peak_rss_mb", "tokens_per_sec", "tasks", "error")
RESUME_COLUMNS = ("executor", "start_step", "first_batch_s", "prepare_s", "peak_rss_mb", "error")
TABLE_COLUMNS = ("objective", "architecture", "executor", "tokens_per_sec_per_core", "tokens_per_sec", "nonpad_fraction",
                 "startup_s", "startup_cpu_s", "warmup_s", "warmup_cpu_s",
                 "load_average", "ratio_to_trainer")
