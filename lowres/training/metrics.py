"""Metrics sinks: a JSONL file (one object per logged step) and a console line; process 0 only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jax


class MetricsWriter:
    """Appends one JSON object per call to `path`; flushes each line so a kill loses nothing logged."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._enabled = jax.process_index() == 0
        self._file = self.path.open("a", encoding="utf-8") if self._enabled else None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        clean = {k: _jsonable(v) for k, v in record.items()}
        self._file.write(json.dumps(clean, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class IntervalMeans:
    """Collects per-step metric scalars (still on device, no sync) and averages them at log time.

    Averaging over the logging interval, as t5x's summaries do, keeps the logged loss from
    depending on which single batch happened to land on the log step.
    """

    SUMMED = ("num_tokens",)

    def __init__(self):
        self._pending: list[dict[str, Any]] = []

    def add(self, metrics: dict[str, Any]) -> None:
        self._pending.append(metrics)

    def summarize(self) -> dict[str, float]:
        values = jax.device_get(self._pending)
        self._pending = []
        out = {}
        for key in values[0]:
            column = [float(v[key]) for v in values]
            out[key] = sum(column) if key in self.SUMMED else sum(column) / len(column)
        out["learning_rate"] = float(values[-1]["learning_rate"])
        return out


def console_line(record: dict[str, Any]) -> str:
    return (
        f"step {record['step']:>6d} | loss {record['loss']:.4f} | lr {record['learning_rate']:.2e} | "
        f"{record['tokens_per_sec']:,.0f} tok/s | {record['step_time_s'] * 1000:.0f} ms/step"
    )
