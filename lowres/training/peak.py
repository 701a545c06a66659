"""Peak FLOP/s of a device in a compute dtype, the denominator of MFU: a datasheet figure on known
accelerators, else measured.

On a CPU (or an accelerator not in the table) the peak is the rate of a jitted square matmul in that
dtype measured in this process: the most a dense-matmul workload can get here.
"""

from __future__ import annotations

import functools
import statistics
import time

import jax
import jax.numpy as jnp

from lowres.errors import ConfigError

# Dense (no sparsity) peak FLOP/s per chip/GPU by device-kind pattern and dtype, from vendor
# datasheets. TPUs publish no float32 figure: float32 matmuls run as multi-pass bfloat16 on the
# MXU, and MaxText reports TPU MFU against the bfloat16 peak, so float32 falls back to it there.
# GPU float32 is the non-tensor-core figure (TF32 tensor-core rates are listed as "tf32").
# Keys are matched against `device.device_kind` case-insensitively, most specific first.
DATASHEET_PEAKS: tuple[tuple[str, str, dict[str, float]], ...] = (
    ("tpu v6 lite", "TPU v6e (Trillium)", {"bfloat16": 918e12}),
    ("tpu v6e", "TPU v6e (Trillium)", {"bfloat16": 918e12}),
    ("tpu v5 lite", "TPU v5e", {"bfloat16": 197e12}),
    ("tpu v5e", "TPU v5e", {"bfloat16": 197e12}),
    ("tpu v5p", "TPU v5p", {"bfloat16": 459e12}),
    ("tpu v5", "TPU v5p", {"bfloat16": 459e12}),
    ("tpu v4", "TPU v4", {"bfloat16": 275e12}),
    ("tpu v3", "TPU v3", {"bfloat16": 123e12}),
    ("tpu v2", "TPU v2", {"bfloat16": 45e12}),
    ("h200 nvl", "NVIDIA H200 NVL", {"float32": 60e12, "tf32": 417e12, "bfloat16": 835e12}),
    ("h200", "NVIDIA H200 SXM", {"float32": 67e12, "tf32": 495e12, "bfloat16": 989e12}),
    ("h100 nvl", "NVIDIA H100 NVL", {"float32": 60e12, "tf32": 417e12, "bfloat16": 835e12}),
    ("h100 pcie", "NVIDIA H100 PCIe", {"float32": 51e12, "tf32": 378e12, "bfloat16": 756e12}),
    ("h100", "NVIDIA H100 SXM", {"float32": 67e12, "tf32": 495e12, "bfloat16": 989e12}),
    ("gh200", "NVIDIA GH200", {"float32": 67e12, "tf32": 495e12, "bfloat16": 989e12}),
    ("a100", "NVIDIA A100", {"float32": 19.5e12, "tf32": 156e12, "bfloat16": 312e12}),
    ("l40s", "NVIDIA L40S", {"float32": 91.6e12, "tf32": 183e12, "bfloat16": 362e12}),
    ("l4", "NVIDIA L4", {"float32": 30.3e12, "tf32": 60e12, "bfloat16": 121e12}),
    ("a10g", "NVIDIA A10G", {"float32": 31.2e12, "tf32": 35e12, "bfloat16": 70e12}),
    ("a10", "NVIDIA A10", {"float32": 31.2e12, "tf32": 62.5e12, "bfloat16": 125e12}),
    ("v100", "NVIDIA V100", {"float32": 15.7e12}),
    ("t4", "NVIDIA T4", {"float32": 8.1e12}),
)

_DTYPE_ALIASES = {"float32": "float32", "f32": "float32", "fp32": "float32", "bfloat16": "bfloat16",
                  "bf16": "bfloat16", "float16": "float16", "f16": "float16", "fp16": "float16", "tf32": "tf32"}


def _canonical_dtype(dtype: object) -> str:
    name = jnp.dtype(dtype).name if not isinstance(dtype, str) or dtype not in _DTYPE_ALIASES else dtype
    if name not in _DTYPE_ALIASES:
        raise ConfigError(f"no peak for dtype {dtype!r}; use one of {sorted(set(_DTYPE_ALIASES.values()))}")
    return _DTYPE_ALIASES[name]


def datasheet_peak(device_kind: str, dtype: object = "float32") -> tuple[float, str] | None:
    """(FLOP/s, source) from the datasheet table for a `device_kind` string, or None if unknown."""
    kind, wanted = device_kind.lower(), _canonical_dtype(dtype)
    for pattern, label, peaks in DATASHEET_PEAKS:
        if pattern in kind:
            if wanted == "float16" and "bfloat16" in peaks:  # dense fp16 and bf16 tensor-core peaks are equal
                return peaks["bfloat16"], f"datasheet: {label} float16 (= bfloat16 dense peak)"
            if wanted in peaks:
                return peaks[wanted], f"datasheet: {label} {wanted}"
            if wanted == "float32" and "bfloat16" in peaks and label.startswith("TPU"):
                return peaks["bfloat16"], f"datasheet: {label} bfloat16 (no float32 figure published)"
            return None
    return None


def matmul_rates(size: int = 2048, repeats: int = 7, dtype: object = jnp.float32) -> tuple[float, float]:
    """(FLOP/s, FLOP per CPU-second of this process) of a jitted `size`×`size` matmul: medians of
    `repeats` timed runs. The second is steadier than the first on a machine shared with other jobs."""
    if size <= 0 or repeats <= 0:
        raise ConfigError(f"size and repeats must be positive, got size={size} repeats={repeats}")
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), dtype)
    b = jax.random.normal(kb, (size, size), dtype)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()  # compile and warm up
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        matmul(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    flops = 2.0 * size**3
    return flops / statistics.median(times), flops / max(statistics.median(cpu_times), 1e-9)


def measure_matmul_peak(size: int = 2048, repeats: int = 7, dtype: object = jnp.float32) -> float:
    """FLOP/s of a jitted `size`×`size` matmul on the default backend: median of `repeats` timed runs."""
    return matmul_rates(size, repeats, dtype)[0]


@functools.lru_cache(maxsize=None)
def _measured(size: int, dtype_name: str) -> tuple[float, float]:
    return matmul_rates(size, dtype=jnp.dtype(dtype_name))


def matmul_flops_per_cpu_second(dtype: object = "float32", *, size: int = 2048) -> float:
    """The measured matmul's FLOP per CPU-second (same cached measurement as the CPU peak)."""
    wanted = _canonical_dtype(dtype)
    return _measured(size, "float32" if wanted == "tf32" else wanted)[1]


def device_peak_flops(device: jax.Device | None = None, dtype: object = "float32", *,
                      size: int = 2048) -> tuple[float, str]:
    """(peak FLOP/s of one device, source): the datasheet peak if known, else the measured matmul peak.

    The measurement runs once per process (per size and dtype) and is cached.
    """
    device = device or jax.devices()[0]
    wanted = _canonical_dtype(dtype)
    if device.platform != "cpu":
        found = datasheet_peak(device.device_kind, wanted)
        if found is not None:
            return found
    measure_dtype = "float32" if wanted == "tf32" else wanted
    return _measured(size, measure_dtype)[0], f"measured: {size}x{size} {measure_dtype} matmul"
