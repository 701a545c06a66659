"""Metrics sinks: a JSONL file (one object per logged step) and a console line; process 0 only."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import jax


class MetricsWriter:
    """Appends one JSON object per call to `path` (flushed, so a kill loses nothing logged) and,
    with `tensorboard_dir`, writes the numeric values as TensorBoard scalars; process 0 only."""

    def __init__(self, path: str | Path, tensorboard_dir: str | Path | None = None):
        self.path = Path(path)
        self._enabled = jax.process_index() == 0
        self._file = self.path.open("a", encoding="utf-8") if self._enabled else None
        self._summary = None
        if self._enabled and tensorboard_dir is not None:
            import tensorflow as tf

            self._summary = tf.summary.create_file_writer(str(tensorboard_dir))
            self._metadata = _scalar_metadata()

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        clean = {k: _jsonable(v) for k, v in record.items()}
        self._file.write(json.dumps(clean, ensure_ascii=False) + "\n")
        self._file.flush()
        if self._summary is not None:
            import tensorflow as tf

            with self._summary.as_default(step=int(record["step"])):
                for key, value in clean.items():
                    if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                        # tf.summary.write with the scalars plugin's metadata: what tf.summary.scalar
                        # writes, without needing the tensorboard package installed.
                        tf.summary.write(key, tf.constant(float(value), tf.float32), metadata=self._metadata)
            self._summary.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._summary is not None:
            self._summary.close()
            self._summary = None


def _scalar_metadata() -> bytes:
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    return metadata.SerializeToString()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class IntervalMeans:
    """Collects per-step metric scalars (still on device, no sync) and averages them at log time.

    Averaging over the logging interval, as t5x's summaries do, keeps the logged loss from
    depending on which single batch happened to land on the log step. The pending steps travel
    with each checkpoint (`pending`/`restore`), so a resumed run logs the same averages.
    """

    SUMMED = ("num_tokens",)
    HOST_ONLY = ("grad_finite",)  # per-leaf vectors, read only when something is not finite

    def __init__(self):
        self._pending: list[dict[str, Any]] = []

    def add(self, metrics: dict[str, Any]) -> None:
        self._pending.append(metrics)

    def __len__(self) -> int:
        return len(self._pending)

    def fetch(self) -> list[dict[str, Any]]:
        """The pending per-step values on the host (one sync); keeps them pending."""
        self._pending = jax.device_get(self._pending)
        return self._pending

    def pending(self) -> list[dict[str, float]]:
        """Pending per-step scalars as JSON-able floats (for a checkpoint's metadata)."""
        return [{k: float(v) for k, v in m.items() if k not in self.HOST_ONLY} for m in self.fetch()]

    def restore(self, pending: list[dict[str, float]]) -> None:
        self._pending = [dict(m) for m in pending]

    def summarize(self) -> dict[str, float]:
        values = self.fetch()
        self._pending = []
        out = {}
        for key in values[0]:
            if key in self.HOST_ONLY:
                continue
            column = [float(v[key]) for v in values]
            out[key] = sum(column) if key in self.SUMMED else sum(column) / len(column)
        out["learning_rate"] = float(values[-1]["learning_rate"])
        out["step_losses"] = [float(v["loss"]) for v in values]
        return out


@dataclasses.dataclass
class LossSpikes:
    """Counts steps whose loss exceeds `factor` times the running mean (EMA) of earlier losses."""

    factor: float = 1.5
    decay: float = 0.9
    ema: float | None = None
    count: int = 0

    def update(self, losses: list[float]) -> None:
        for loss in losses:
            if not math.isfinite(loss):
                continue
            if self.ema is not None and self.factor > 0 and loss > self.factor * self.ema:
                self.count += 1
            self.ema = loss if self.ema is None else self.decay * self.ema + (1 - self.decay) * loss

    def state(self) -> dict[str, Any]:
        return {"ema": self.ema, "count": self.count}

    def restore(self, state: dict[str, Any]) -> None:
        self.ema, self.count = state.get("ema"), int(state.get("count", 0))


def console_line(record: dict[str, Any]) -> str:
    return (
        f"step {record['step']:>6d} | loss {record['loss']:.4f} | lr {record['learning_rate']:.2e} | "
        f"{record['tokens_per_sec']:,.0f} tok/s | {record['step_time_s'] * 1000:.0f} ms/step"
        + (f" | {record['tflops_per_device']:.3g} TFLOP/s/device" if "tflops_per_device" in record else "")
        + (f" | MFU {record['mfu']:.1%}" if "mfu" in record else "")
    )
