"""A sweep's results: one table over every run (CSV, JSON, markdown with means and spreads over seeds)
and PNG plots (each metric against each swept value; overlaid curves), rebuilt from the run
directories whenever a run finishes, so a crash never leaves them out of step with the runs."""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lowres import run_dir as run_files
from lowres.errors import DataError, MissingFileError
from lowres.figures import save_png
from lowres.files import write_atomic, write_json
from lowres.sweeps import state
from lowres.sweeps.spec import Run, SweepSpec

LANGUAGE_BPB = re.compile(r"^eval/([^/]+)/bits_per_byte$")
PLOTS_DIR = "plots"


def _num_params(directory: Path) -> int | None:
    if not run_files.is_run_dir(directory):
        return None
    from lowres.models.config import (  # no TensorFlow, unlike architecture
        DecoderOnlyConfig,
        EncoderDecoderConfig,
    )

    info = run_files.read_run_info(directory)
    fields = {k: v for k, v in info.model.items() if k != "architecture"}
    config_class = DecoderOnlyConfig if info.architecture == "decoder_only" else EncoderDecoderConfig
    return int(config_class(**fields).num_params())


def metric_records(directory: Path) -> list[dict]:
    try:
        return run_files.read_metrics(directory)
    except (MissingFileError, DataError):
        return []


def run_row(run: Run, output: Path, spec: SweepSpec, stale_after_s: float = state.DEFAULT_STALE_AFTER_S) -> dict:
    """One row of the table: the run's swept values, state, steps, seconds, size and metrics (final,
    best by the metric's direction, and final held-out bits per byte of each language)."""
    directory = state.run_dir(output, run.name)
    status = state.read_status(directory) or {}
    records = metric_records(directory)
    row: dict[str, Any] = {"run": run.name, "state": state.run_state(directory, stale_after_s), **run.swept}
    if "seed" not in row:
        row["seed"] = run.bindings.get(spec.seed_binding[0])
    row["steps"] = max((r.get("step", 0) for r in records), default=0)
    row["seconds"] = round(float(status.get("seconds", 0.0)), 1)
    row["params"] = _num_params(directory)
    for metric, direction in spec.metrics.items():
        values = [r[metric] for r in records if isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        row[f"final {metric}"] = values[-1] if values else None
        row[f"best {metric}"] = (min(values) if direction == "min" else max(values)) if values else None
    final: dict[str, float] = {}
    for record in records:
        for key, value in record.items():
            match = LANGUAGE_BPB.match(key)
            if match and isinstance(value, (int, float)):
                final[match.group(1)] = value
    for language in sorted(final):
        row[f"bpb {language}"] = final[language]
    return row


def collect(runs: Sequence[Run], output: Path, spec: SweepSpec) -> list[dict]:
    return [run_row(run, output, spec) for run in runs]


def _columns(rows: Sequence[Mapping]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or _columns(rows))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def aggregate_over_seeds(rows: Sequence[Mapping], swept_keys: Sequence[str]) -> list[dict]:
    """Finished runs grouped by every swept value but the seed: per metric column, mean and sample
    standard deviation (`±`), and the number of seeds."""
    groups: dict[tuple, list[Mapping]] = defaultdict(list)
    keys = [k for k in swept_keys if k != "seed"]
    for row in rows:
        if row.get("state") == "done":
            groups[tuple(str(row.get(k)) for k in keys)].append(row)
    metric_columns = [c for c in _columns(rows) if c.startswith(("final ", "best ", "bpb "))]
    out = []
    for group_rows in groups.values():
        summary: dict[str, Any] = {k: group_rows[0].get(k) for k in keys}
        summary["seeds"] = len(group_rows)
        for column in metric_columns:
            values = [r[column] for r in group_rows if isinstance(r.get(column), (int, float))]
            if values:
                mean = statistics.fmean(values)
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                summary[column] = f"{mean:.4f} ± {spread:.4f}" if len(values) > 1 else f"{mean:.4f}"
        out.append(summary)
    return out


def write_tables(rows: Sequence[Mapping], output: Path, spec: SweepSpec) -> list[Path]:
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in state.STATES}
    markdown = [f"# Sweep {spec.path.name}: {len(rows)} runs",
                "", ", ".join(f"{n} {s}" for s, n in counts.items() if n), "",
                "## Every run", "", markdown_table(rows), ""]
    aggregated = aggregate_over_seeds(rows, spec.swept_keys)
    if aggregated and len(spec.seeds) > 1:
        markdown += [f"## Mean ± standard deviation over seeds {list(spec.seeds)}", "", markdown_table(aggregated), ""]
    return [
        write_atomic(output / "results.csv", buffer.getvalue()),
        write_json(output / "results.json", {"spec": str(spec.path), "runs": list(rows), "over_seeds": aggregated}),
        write_atomic(output / "results.md", "\n".join(markdown)),
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def plot_results(rows: Sequence[Mapping], runs: Sequence[Run], output: Path, spec: SweepSpec) -> list[Path]:
    """PNGs in OUT/plots/: `curves_<metric>.png` (every run's curve, one colour per setting, seeds
    alike) and `<metric>_by_<key>.png` (final value against each swept key, mean ± sd over seeds, one
    line per setting of the other keys)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = output / PLOTS_DIR
    written: list[Path] = []
    keys = [k for k in spec.swept_keys if k != "seed"]
    settings = sorted({tuple(str(run.swept.get(k)) for k in keys) for run in runs})
    colours = {setting: plt.cm.tab10(i % 10) for i, setting in enumerate(settings)}
    for metric in spec.metrics:
        figure, axis = plt.subplots(figsize=(7, 4))
        drawn = set()
        for run in runs:
            records = metric_records(state.run_dir(output, run.name))
            points = [(r["step"], r[metric]) for r in records if _is_number(r.get(metric))]
            if not points:
                continue
            setting = tuple(str(run.swept.get(k)) for k in keys)
            label = ", ".join(f"{k}={v}" for k, v in zip(keys, setting)) if setting not in drawn else None
            drawn.add(setting)
            axis.plot(*zip(*points), color=colours[setting], alpha=0.8, lw=1.2, label=label)
        if drawn:
            axis.set(xlabel="step", ylabel=metric, title=f"{spec.path.stem}: {metric}")
            if len(drawn) <= 12 and keys:
                axis.legend(fontsize=7)
            written.append(save_png(figure, plots / f"curves_{_slug(metric)}.png", dpi=110, bbox_inches="tight"))
        plt.close(figure)
    for metric in spec.metrics:
        column = f"final {metric}"
        done = [r for r in rows if _is_number(r.get(column))]
        for key in keys:
            values = list(dict.fromkeys(r.get(key) for r in done))
            if len(values) < 2:
                continue
            numeric = all(_is_number(v) for v in values)
            order = sorted(values) if numeric else values
            position = {v: (v if numeric else i) for i, v in enumerate(order)}
            others = [k for k in keys if k != key]
            lines: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
            for row in done:
                lines[tuple(str(row.get(k)) for k in others)][row.get(key)].append(float(row[column]))
            figure, axis = plt.subplots(figsize=(6, 4))
            for other, by_value in lines.items():
                xs = [v for v in order if v in by_value]
                means = [statistics.fmean(by_value[v]) for v in xs]
                sds = [statistics.stdev(by_value[v]) if len(by_value[v]) > 1 else 0.0 for v in xs]
                label = ", ".join(f"{k}={v}" for k, v in zip(others, other)) or None
                axis.errorbar([position[v] for v in xs], means, yerr=sds, marker="o", capsize=3, label=label)
            if numeric and min(order) > 0 and max(order) / min(order) >= 10:
                axis.set_xscale("log")
            if not numeric:
                axis.set_xticks(range(len(order)), [str(v) for v in order])
            axis.set(xlabel=key, ylabel=column, title=f"{column} by {key} (mean ± sd over seeds)")
            if len(lines) > 1:
                axis.legend(fontsize=7)
            written.append(save_png(figure, plots / f"{_slug(metric)}_by_{_slug(key)}.png", dpi=110,
                                    bbox_inches="tight"))
    return written


def refresh(runs: Sequence[Run], output: Path, spec: SweepSpec) -> list[dict]:
    """Rebuilds the tables and plots from the run directories; returns the rows."""
    rows = collect(runs, output, spec)
    write_tables(rows, output, spec)
    plot_results(rows, runs, output, spec)
    return rows
