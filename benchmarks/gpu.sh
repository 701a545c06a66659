#!/usr/bin/env bash
# Accelerator benchmark, unattended: training throughput and MFU of the decoder shapes up to 1.06B
# parameters in bfloat16 compute (float32 parameters and optimizer state, float32 logits and loss),
# each attention implementation the backend offers, then cached greedy decoding at batch 1 and 32.
# MFU is against the datasheet peak of the device in the compute dtype (lowres.training.peak).
# Every case runs in its own process; a case that fails (out of memory, a kernel the device lacks) is
# recorded as failed and the rest go on. About 6-8 minutes on one H100/H200-class GPU (estimated, not
# yet measured: no GPU was available when this was written).
#
#   benchmarks/gpu.sh [OUT_DIR]          default OUT_DIR: benchmarks/results/accelerator-<date>
#
# Environment (for smoke tests and other devices): LOWRES_BENCH_SHAPES (space-separated shapes),
# LOWRES_BENCH_STEPS (timed steps, default 20), LOWRES_BENCH_DTYPE (default bfloat16),
# LOWRES_BENCH_ATTENTION (implementations; default: dot_product and cudnn on a GPU, dot_product
# elsewhere), LOWRES_BENCH_DECODE (0 skips the decoding case), LOWRES_BENCH_ARGS (more options for
# each `lowres bench train`), LOWRES (the lowres command), PYTHON.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:-benchmarks/results/accelerator-$(date +%F)}
lowres=${LOWRES:-lowres}
python=${PYTHON:-python}
shapes=${LOWRES_BENCH_SHAPES:-"maxtext-ref t5-ref decoder-125m decoder-350m decoder-1b"}
steps=${LOWRES_BENCH_STEPS:-20}
dtype=${LOWRES_BENCH_DTYPE:-bfloat16}
backend=$($python -c "import jax; print(jax.default_backend())" 2>/dev/null || echo unknown)
if [ "$backend" = gpu ]; then default_attention="dot_product cudnn"; else default_attention="dot_product"; fi
attentions=${LOWRES_BENCH_ATTENTION:-$default_attention}
mkdir -p "$out"
echo "lowres accelerator benchmark: backend $backend, shapes [$shapes], attention [$attentions], $dtype -> $out"

started=$(date +%s)
for shape in $shapes; do
  for attention in $attentions; do
    name="train-$shape-$attention"
    echo "== $name ($(( $(date +%s) - started )) s so far)"
    if ! $lowres bench train --shape="$shape" --synthetic --steps="$steps" --dtype="$dtype" \
        --attention="$attention" --output="$out/$name.json" ${LOWRES_BENCH_ARGS:-} > "$out/$name.log" 2>&1; then
      echo "   failed: $(tail -n 1 "$out/$name.log")"
      printf '{"case": "train", "shape": "%s", "attention": "%s", "failed": true}\n' "$shape" "$attention" \
        > "$out/$name.json"
    else
      tail -n 3 "$out/$name.log" | head -n 1
    fi
  done
done
if [ "${LOWRES_BENCH_DECODE:-1}" != 0 ]; then
  echo "== decode"
  $lowres bench decode --output="$out/decode.json" > "$out/decode.log" 2>&1 || echo "   failed: $(tail -n 1 "$out/decode.log")"
fi

$python - "$out" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [json.loads(p.read_text()) for p in sorted(out.glob("train-*.json"))]
print(f"\n| shape | attention | dtype | params | tokens/s | TFLOP/s per device | MFU | peak |")
print("|---|---|---|---:|---:|---:|---:|---|")
for r in rows:
    if r.get("failed"):
        print(f"| {r['shape']} | {r['attention']} | | | failed | | | |")
        continue
    print(f"| {r['shape']} | {r['attention']} | {r['dtype']} | {r['params'] / 1e6:.0f}M | {r['tokens_per_sec']:,.0f} | "
          f"{r['tflops_per_device']:.1f} | {100 * r['mfu']:.1f}% | {r['peak_source']} |")
(out / "summary.json").write_text(json.dumps({"train": rows}, indent=1) + "\n")
print(f"\nwrote {out / 'summary.json'}")
PY
