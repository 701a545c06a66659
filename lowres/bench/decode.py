"""`lowres bench decode`: greedy decode throughput and latency of the quickstart-size models at batch 1
and 32, with and without the KV cache, beside Hugging Face transformers' `generate` (T5 / Llama of the
same size, random weights) when a Python with torch + transformers is available.

The HF side runs in its own interpreter (`LOWRES_HF_PYTHON`; unset: lowres rows only) so torch never
enters lowres' environment. Every row generates exactly `new_tokens` tokens per sequence (no EOS).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lowres.bench import report
from lowres.errors import UsageError

ROW_COLUMNS = ("architecture", "batch", "cache", "lowres_tokens_per_sec", "lowres_latency_s", "hf_tokens_per_sec",
                 "hf_latency_s", "speedup_vs_hf")
SHAPES = {
    "quickstart": dict(preset="mini", vocab_size=4000, prompt_length=64, new_tokens=32),
    "tiny": dict(preset="tiny", vocab_size=64, prompt_length=8, new_tokens=4),  # tests
}
HF_PYTHON = os.environ.get("LOWRES_HF_PYTHON", "")  # unset: lowres rows only


def _loaded(architecture: str, preset: str, vocab_size: int):
    from lowres.checkpoints.trained_model import TrainedModel
    from lowres.models.architecture import ModelConfig

    config = ModelConfig(architecture=architecture, preset=preset).resolve(vocab_size)
    # eos_id -1 never matches: every row decodes the full length
    return TrainedModel.initialized(config, types.SimpleNamespace(eos_id=-1))


def lowres_row(loaded, batch: int, use_cache: bool, prompt_length: int, new_tokens: int, repeats: int) -> dict:
    """Median seconds of one jitted greedy `generate` of `new_tokens` tokens for `batch` prompts."""
    import jax

    from lowres.inference.decoding import DecodeConfig
    from lowres.inference.generate import Generator

    generator = Generator(loaded, DecodeConfig("greedy", max_length=new_tokens), batch_size=batch,
                          use_cache=use_cache)
    vocab = loaded.config.vocab_size
    prompts = np.random.default_rng(0).integers(3, vocab, (batch, prompt_length), dtype=np.int32)
    if generator.architecture.decoder_only:
        prompts[:, 0] = 0
    lengths = np.full((batch,), prompt_length, np.int32)
    start = time.perf_counter()
    jax.block_until_ready(generator.decode_padded(prompts, lengths))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(generator.decode_padded(prompts, lengths))
        times.append(time.perf_counter() - start)
    assert int(np.asarray(out.lengths).min()) == new_tokens
    seconds = statistics.median(times)
    return {"lowres_latency_s": seconds, "lowres_tokens_per_sec": batch * new_tokens / seconds,
            "lowres_compile_s": compile_s}


def _hf_available() -> bool:
    return bool(HF_PYTHON) and Path(HF_PYTHON).is_file()


def hf_row(config, batch: int, use_cache: bool, prompt_length: int, new_tokens: int, repeats: int) -> dict:
    """The same generation through transformers in HF_PYTHON; empty when that interpreter is missing."""
    if not _hf_available():
        return {}
    import dataclasses

    from lowres.models.architecture import architecture_of

    spec = {**dataclasses.asdict(config), "architecture": architecture_of(config), "batch": batch,
            "use_cache": use_cache, "prompt_length": prompt_length, "new_tokens": new_tokens, "repeats": repeats}
    done = subprocess.run([HF_PYTHON, str(Path(__file__).with_name("hf_decode.py")), json.dumps(spec)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {"hf_error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if out["new_tokens"] != new_tokens:
        return {"hf_error": f"generated {out['new_tokens']} tokens, not {new_tokens}"}
    return {"hf_latency_s": out["seconds"], "hf_tokens_per_sec": batch * new_tokens / out["seconds"],
            "torch": out["torch"], "transformers": out.get("transformers")}


def run(shape: str = "quickstart", steps: int | None = None, log: Callable[[str], None] = print,
        batches=(1, 32), architectures=("encoder_decoder", "decoder_only"), caches=(True, False)) -> dict:
    """Every (architecture, batch, cache) row; the record's tokens_per_sec is lowres' at the largest batch."""
    if shape not in SHAPES:
        raise UsageError(f"bench decode --shape={shape!r} is unknown; choose one of {sorted(SHAPES)}")
    s = SHAPES[shape]
    repeats = steps or 3
    rows = []
    for architecture in architectures:
        loaded = _loaded(architecture, s["preset"], s["vocab_size"])
        for batch in batches:
            for use_cache in caches:
                row = {"architecture": architecture, "batch": batch, "cache": use_cache}
                row.update(lowres_row(loaded, batch, use_cache, s["prompt_length"], s["new_tokens"], repeats))
                row.update(hf_row(loaded.config, batch, use_cache, s["prompt_length"], s["new_tokens"], repeats))
                if "hf_tokens_per_sec" in row:
                    row["speedup_vs_hf"] = row["lowres_tokens_per_sec"] / row["hf_tokens_per_sec"]
                log(f"[decode] {architecture} batch {batch} cache {use_cache}: "
                    f"{row['lowres_tokens_per_sec']:,.0f} tokens/s" +
                    (f", HF {row['hf_tokens_per_sec']:,.0f} tokens/s" if "hf_tokens_per_sec" in row else ""))
                rows.append(row)
    log(table(rows))
    best = [r for r in rows if r["batch"] == max(batches) and r["cache"]]
    return report.result(
        "decode", shape=shape, preset=s["preset"], prompt_length=s["prompt_length"], new_tokens=s["new_tokens"],
        tokens_per_sec=min(r["lowres_tokens_per_sec"] for r in best),
        min_speedup_vs_hf_at_largest_batch=min((r["speedup_vs_hf"] for r in best if "speedup_vs_hf" in r),
                                               default=None),
        hf_python=Path(HF_PYTHON).name if _hf_available() else None, rows=rows, peak_rss_mb=report.peak_rss_mb(),
        **report.machine_fields(),
    )


def table(rows) -> str:
    """Markdown table of the rows."""
    return report.table(rows, ROW_COLUMNS)


if __name__ == "__main__":
    print(table(run(steps=int(sys.argv[1]) if len(sys.argv) > 1 else None)["rows"]))
