"""`lowres bench scale`: the largest decoder preset that trains on this machine, with memory and tokens/s.

Each candidate trains in its own subprocess (`python -m lowres.bench.scale PRESET`), so an
out-of-memory kill or a time-out ends that candidate only. Candidates run largest first and stop
at the first that trains: that one is the answer, and the smaller ones need not be run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from lowres.bench import report
from lowres.bench import train as train_bench

MIN_PRESET = "gpt2-small"
VOCAB_SIZE = 32000


def candidates(min_preset: str = MIN_PRESET) -> list[str]:
    """Decoder presets at least as large as `min_preset`, largest first."""
    from lowres.models.config import DECODER_ONLY_PRESETS, decoder_only_config

    sizes = {name: decoder_only_config(name, VOCAB_SIZE).num_params() for name in DECODER_ONLY_PRESETS}
    floor = sizes[min_preset]
    return sorted((n for n, s in sizes.items() if s >= floor), key=sizes.get, reverse=True)


def train_state_gib(params: int) -> float:
    """float32 parameters, gradients and two AdamW moments: the floor of training memory."""
    return 4 * 4 * params / 2**30


def shape_for(preset: str, batch_size: int = 1, length: int = 256) -> train_bench.Shape:
    return train_bench.Shape(
        preset, "decoder_only", preset, vocab_size=VOCAB_SIZE, inputs_length=length // 2,
        targets_length=length - length // 2, batch_size=batch_size, description=f"scale candidate {preset}",
    )  # fmt: skip


def memory_total_gib() -> float:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def _run_candidate(preset: str, steps: int, timeout_s: float, peak_size: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "lowres.bench.scale", preset, str(steps), str(peak_size)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except subprocess.TimeoutExpired:
        return {"preset": preset, "ok": False, "error": f"timed out after {timeout_s:.0f}s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        reason = "killed (out of memory?)" if done.returncode < 0 else (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"preset": preset, "ok": False, "error": f"exit {done.returncode}: {reason}",
                "wall_s": time.perf_counter() - start}
    row = json.loads(lines[-1])
    row.update(preset=preset, ok=True, wall_s=time.perf_counter() - start)
    return row


def run(presets: Sequence[str] | None = None, steps: int = 1, timeout_s: float = 600, peak_size: int = 2048,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Trains `presets` (default: every preset from GPT-2 small up), largest first, until one trains;
    `timeout_s` bounds all candidates together."""
    presets = list(presets) if presets else candidates()
    deadline = time.perf_counter() + timeout_s
    rows = []
    for number, preset in enumerate(presets, 1):
        left = deadline - time.perf_counter()
        if left <= 1:
            rows.append({"preset": preset, "ok": False, "error": f"not tried: the {timeout_s:.0f}s limit ran out"})
            break
        log(f"[scale] training {preset} in a subprocess ({number}/{len(presets)}, 1 warm-up + {steps} timed "
            f"steps, {left:.0f}s left) ...")
        row = _run_candidate(preset, steps, left, peak_size)
        rows.append(row)
        if row["ok"]:
            log(f"[scale] {preset}: {row['params'] / 1e6:.0f}M params, peak RSS {row['peak_rss_mb']:,.0f} MB, "
                f"{row['tokens_per_sec']:.1f} tokens/s")
            break
        log(f"[scale] {preset} failed: {row['error']}")
    trained = [r for r in rows if r["ok"]]
    best = max(trained, key=lambda r: r["params"]) if trained else None
    fields = {k: best.get(k) for k in (*report.COMMON_FIELDS, "mfu_per_cpu_second") if k != "case"} if best else {}
    fields.update(report.machine_fields())
    return report.result(
        "scale",
        **fields,
        largest_preset=best["preset"] if best else None,
        largest_params=best["params"] if best else None,
        memory_total_gib=memory_total_gib(),
        meets_target=bool(best) and best["params"] >= _params(MIN_PRESET),
        rows=[{k: r.get(k) for k in ROW_FIELDS} | {"train_state_gib": train_state_gib(r["params"]) if r.get("params")
                                                  else None} for r in rows],
    )


def _params(preset: str) -> int:
    from lowres.models.config import decoder_only_config

    return decoder_only_config(preset, VOCAB_SIZE).num_params()


ROW_FIELDS = ("preset", "ok", "params", "peak_rss_mb", "tokens_per_sec", "mfu", "mfu_per_cpu_second",
              "gflops_per_cpu_second", "step_time_median_s", "step_cpu_time_median_s", "flops_per_step", "tokens_per_step", "compile_time_s", "wall_s", "error")
TABLE_COLUMNS = ("preset", "ok", "params", "train_state_gib", "peak_rss_mb", "tokens_per_sec", "mfu",
                 "mfu_per_cpu_second", "step_time_median_s", "step_cpu_time_median_s", "compile_time_s", "error")


def _main(argv: Sequence[str]) -> int:
    preset, steps = argv[0], int(argv[1]) if len(argv) > 1 else 1
    peak_size = int(argv[2]) if len(argv) > 2 else 2048
    result = train_bench.run(shape_for(preset), steps=steps, synthetic=True, warmup_steps=1, peak_size=peak_size,
                             log=lambda line: print(line, file=sys.stderr))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
