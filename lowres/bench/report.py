"""What every benchmark case reports: timing statistics, MFU, peak memory, the table and the JSON line."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lowres.files import write_atomic

# Fields every case's JSON object carries (None where a field does not apply to the case).
COMMON_FIELDS = (
    "case",
    "tokens_per_sec",
    "tflops_per_device",
    "mfu",
    "peak_gflops",
    "peak_source",
    "step_time_median_s",
    "step_time_spread",
    "compile_time_s",
    "peak_rss_mb",
    "device",
    "num_devices",
    "cpu_model",
    "load_average",
)


def step_stats(times: Sequence[float]) -> dict[str, float]:
    """Median step time, and spread as the interquartile range relative to the median."""
    if not times:
        raise ValueError("no measured steps")
    ordered = sorted(times)
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    median = statistics.median(ordered)
    return {
        "step_time_median_s": median,
        "step_time_spread": (q3 - q1) / median if median > 0 else 0.0,
        "step_time_min_s": ordered[0],
        "step_time_max_s": ordered[-1],
        "measured_steps": len(ordered),
    }


def throughput(tokens_per_step: int, flops_per_step: float, step_time_s: float, num_devices: int,
               peak_flops: float) -> dict[str, float]:
    """tokens/s, per-device TFLOP/s and MFU (model FLOPs per device over the per-device peak)."""
    per_device = flops_per_step / num_devices / step_time_s
    return {
        "tokens_per_sec": tokens_per_step / step_time_s,
        "tflops_per_device": per_device / 1e12,
        "mfu": per_device / peak_flops,
    }


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children), in MiB.

    For this process Linux's VmHWM is read: getrusage's ru_maxrss survives fork and exec, so a child
    started by a large process would report at least its parent's size."""
    if not children:
        try:
            for line in open("/proc/self/status", encoding="ascii"):  # noqa: SIM115
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
        except OSError:
            pass
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux reports KiB


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The host CPU's model name (Linux's cpuinfo), else what `platform` knows: records from two
    machines differ by up to 2.5x in matmul peak, so a record says which machine it came from."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fields() -> dict[str, Any]:
    """Device kind and count, the host CPU, and the 1-minute load average (the machine may be shared)."""
    import jax

    device = jax.devices()[0]
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "num_devices": jax.device_count(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),
    }


def result(case: str, **fields: Any) -> dict[str, Any]:
    """A case's result with every common field present (missing ones None)."""
    out = {name: None for name in COMMON_FIELDS}
    out.update(fields)
    out["case"] = case
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)[:60]
    return str(value)


def table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table of `columns` over `rows`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def field_table(record: Mapping[str, Any]) -> str:
    """A two-column (field, value) table of one result, skipping nested lists."""
    return table(
        [{"field": k, "value": v} for k, v in record.items() if v is not None and not isinstance(v, list)],
        ("field", "value"),
    )


def write_json(path: str | Path, record: Mapping[str, Any]) -> None:
    """Writes `record` atomically (temp file + rename)."""
    write_atomic(path, json.dumps(record, indent=2) + "\n")
