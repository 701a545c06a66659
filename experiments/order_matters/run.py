"""The "order matters" recipe in one command (METHODS section 4):

    python experiments/order_matters/run.py --output runs/order_matters

1. `lowres data split`: FLORES-200 dev English and Yoruba with 20% of the documents held out, Yoruba's
   training text cut to 15 KB (about 7x less than English): runs/order_matters/data (the path the
   sweep spec's DataConfig.source names; skipped when present);
2. `lowres sweep experiments/order_matters/sweep.yaml`: static temperature sampling against English
   alone for the first half, then the same mixture; 3 seeds each (skips finished runs, resumes);
3. the report: experiments/order_matters/results/results.{md,json} and curves.png, from the runs.

The paper's claim, as a CPU check: the two-phase schedule gives a lower best held-out loss on the
small language at equal loss on the large one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "runs" / "order_matters" / "data"
FLORES = "flores:../shared/data/flores200/dev"
LOW, HIGH = "yor_Latn", "eng_Latn"
LOW_BYTES = 15000
ARMS = ("static", "two_phase")


def lowres(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "lowres.cli", *args], cwd=ROOT, check=False).returncode


def make_split() -> None:
    if (DATA / "split.json").is_file():
        print(f"data split: {DATA} exists; kept")
        return
    code = lowres("data", "split", FLORES, f"--langs={HIGH},{LOW}", f"--output={DATA}", "--heldout_fraction=0.2",
                  f"--max_train_bytes={LOW}={LOW_BYTES}")
    if code:
        sys.exit(code)


def curve(run_dir: Path, key: str) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r[key] for r in records if isinstance(r.get(key), (int, float))}


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(output: Path) -> dict:
    rows = json.loads((output / "results.json").read_text())["runs"]
    low_key, high_key = f"eval/{LOW}/loss", f"eval/{HIGH}/loss"
    per_run = []
    for row in rows:
        if row["state"] != "done":
            continue
        directory = output / "runs" / row["run"]
        low, high = curve(directory, low_key), curve(directory, high_key)
        best_step = min(low, key=low.get)
        per_run.append({
            "run": row["run"], "arm": row["arm"], "seed": row["seed"],
            "best_low_loss": low[best_step], "best_low_step": best_step,
            "final_low_loss": low[max(low)], "final_high_loss": high[max(high)],
            "high_loss_at_best_low": high[best_step], "best_high_step": min(high, key=high.get),
            "best_low_bits_per_byte": row[f"best eval/{LOW}/bits_per_byte"],
            "low_curve": low, "high_curve": high,
        })
    arms = {}
    for arm in ARMS:
        runs = [r for r in per_run if r["arm"] == arm]
        if not runs:
            continue
        arms[arm] = {"seeds": [r["seed"] for r in runs]}
        for key in ("best_low_loss", "best_low_step", "final_low_loss", "final_high_loss", "high_loss_at_best_low",
                    "best_low_bits_per_byte", "best_high_step"):
            arms[arm][key] = mean_sd([float(r[key]) for r in runs])
    split = json.loads((DATA / "split.json").read_text())
    return {"arms": arms, "runs": [{k: v for k, v in r.items() if not k.endswith("_curve")} for r in per_run],
            "curves": {r["run"]: {"arm": r["arm"], "low": r["low_curve"], "high": r["high_curve"]} for r in per_run},
            "data": split["languages"], "params": next((r["params"] for r in rows if r.get("params")), None),
            "spec": str((HERE / "sweep.yaml").relative_to(ROOT))}


def verdict(arms: dict) -> list[str]:
    """Plain statements computed from the numbers: the effect, the spread, and whether A was equal."""
    if set(arms) != set(ARMS):
        return ["Not every arm finished; no comparison."]
    static, phased = arms["static"], arms["two_phase"]
    diff = phased["best_low_loss"][0] - static["best_low_loss"][0]
    spread = max(static["best_low_loss"][1], phased["best_low_loss"][1], 1e-9)
    high_diff = phased["final_high_loss"][0] - static["final_high_loss"][0]
    high_spread = max(static["final_high_loss"][1], phased["final_high_loss"][1], 1e-9)
    lines = [f"Best held-out {LOW} loss: two-phase {phased['best_low_loss'][0]:.3f}, static "
             f"{static['best_low_loss'][0]:.3f} (difference {diff:+.3f} nats/token; the larger seed standard "
             f"deviation is {spread:.3f}, so the difference is {abs(diff) / spread:.1f} of them)."]
    if diff < 0 and abs(diff) >= 3 * spread:
        lines.append("The paper's direction reproduces: the two-phase schedule reaches a clearly lower best loss on "
                     "the small language.")
    elif diff < 0:
        lines.append("The direction is the paper's, but the difference is under three seed standard deviations: "
                     "not conclusive at this size.")
    else:
        lines.append("The paper's direction does not reproduce here: the static mixture's best loss on the small "
                     "language is as low or lower.")
    lines.append(
        f"Where the best falls: static at step {static['best_low_step'][0]:.0f}, two-phase at step "
        f"{phased['best_low_step'][0]:.0f} ({phased['best_low_step'][0] - 150:.0f} steps after {LOW} enters); by the "
        f"end both have overfitted the small language (final {LOW} loss static {static['final_low_loss'][0]:.3f}, "
        f"two-phase {phased['final_low_loss'][0]:.3f}).")
    lines.append(
        f"{HIGH} overfits too: its held-out loss is lowest around step {static['best_high_step'][0]:.0f} (static, mean over seeds) and "
        f"{phased['best_high_step'][0]:.0f} (two-phase) and rises afterwards, so the final {HIGH} losses compared "
        "below are past their best in both arms.")
    if diff >= 0:
        lines.append(
            "Our reading: with 15 KB of Yoruba the small language is memorised within a few dozen steps of entering "
            "the mixture in either arm, so its best held-out loss is set by how early overfitting starts rather than "
            "by what the model transfers from English. The static arm reaches its best while the learning rate is "
            "near its peak and the model is still general; the two-phase model meets Yoruba already specialised to "
            "English and with a decayed learning rate. The paper's benefit comes from transfer at a scale this run "
            "does not reach; a larger small-language share, a later split or a constant learning rate might change "
            "the outcome, and none of these was tried.")
    lines.append(f"Final held-out {HIGH} loss: two-phase {phased['final_high_loss'][0]:.3f}, static "
                 f"{static['final_high_loss'][0]:.3f} (difference {high_diff:+.3f}, "
                 f"{abs(high_diff) / high_spread:.1f} seed standard deviations): "
                 + ("equal within the seed spread, so the comparison is at equal loss on the large language."
                    if abs(high_diff) <= 2 * high_spread else
                    "not equal, so the small-language comparison is not at equal loss on the large language; "
                    "read the two together."))
    return lines


def write_report(summary: dict, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    arms = summary["arms"]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    colours = {"static": "tab:blue", "two_phase": "tab:orange"}
    for axis, which, lang in ((axes[0], "low", LOW), (axes[1], "high", HIGH)):
        for arm in ARMS:
            curves = [c[which] for c in summary["curves"].values() if c["arm"] == arm]
            if not curves:
                continue
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            means = [statistics.fmean(c[s] for c in curves) for s in steps]
            sds = [statistics.stdev([c[s] for c in curves]) if len(curves) > 1 else 0.0 for s in steps]
            axis.plot(steps, means, color=colours[arm], label=f"{arm} ({len(curves)} seeds)")
            axis.fill_between(steps, [m - s for m, s in zip(means, sds)], [m + s for m, s in zip(means, sds)],
                              color=colours[arm], alpha=0.2)
        axis.axvline(150, color="grey", ls=":", lw=1)
        axis.set(xlabel="step", ylabel="held-out loss (nats/token)", title=f"{lang} held-out loss (mean ± sd)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(directory / "curves.png", dpi=110)
    plt.close(figure)

    data = summary["data"]
    rows = []
    for arm, values in arms.items():
        cell = {k: f"{v[0]:.3f} ± {v[1]:.3f}" for k, v in values.items() if k not in ("seeds", "best_high_step")}
        rows.append(f"| {arm} | {len(values['seeds'])} | {cell['best_low_loss']} | {cell['best_low_bits_per_byte']} | "
                    f"{values['best_low_step'][0]:.0f} | {cell['high_loss_at_best_low']} | {cell['final_high_loss']} | "
                    f"{cell['final_low_loss']} |")
    text = [
        "# Order matters: high-resource first, then the mixture",
        "",
        "Generated by `python experiments/order_matters/run.py --output runs/order_matters` from the runs of",
        "`experiments/order_matters/sweep.yaml`; every number below is read from the runs' metrics.",
        "",
        "## Setup",
        "",
        f"- Data: FLORES-200 dev, 20% of the documents held out (the same documents in both languages). "
        f"Training text: {HIGH} {data[HIGH]['train']['bytes']:,} bytes, {LOW} {data[LOW]['train']['bytes']:,} bytes "
        f"(cut to {LOW_BYTES:,}); held out: {data[HIGH]['validation']['bytes']:,} and "
        f"{data[LOW]['validation']['bytes']:,} bytes.",
        "- Model: decoder-only `mini` (d_model 128, 4 layers), causal LM, a 2,000-piece SentencePiece vocabulary "
        "shared by both languages; batch 16 x 128 tokens, 300 steps, AdamW, cosine from 3e-3.",
        "- static: temperature sampling (alpha 0.3) over both languages from the first step.",
        "- two_phase: English alone for steps 0-150, then the same temperature mixture (optimizer state kept).",
        "- Held-out loss every 25 steps; 3 seeds per arm (model initialisation and data order).",
        "",
        "## Results (mean ± standard deviation over seeds)",
        "",
        f"| arm | seeds | best {LOW} loss | best {LOW} bits/byte | step of best | {HIGH} loss there | final {HIGH} "
        f"loss | final {LOW} loss |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "![held-out curves](curves.png)",
        "",
        "## Conclusion",
        "",
        *[part for line in verdict(arms) for part in (line, "")],
        "",
        "## What this run can and cannot show",
        "",
        f"- It can show, at a {summary['params'] / 1e6:.1f}M-parameter scale and a "
        f"{data[HIGH]['train']['bytes'] / data[LOW]['train']['bytes']:.0f}:1 imbalance, whether delaying the small language "
        "changes how low its held-out loss gets before it overfits, with three seeds of spread.",
        "- It cannot show the paper's scale or its imbalance (the paper's high-resource tasks are orders of "
        "magnitude larger); 15 KB of Yoruba is seen for many epochs in both arms, so overfitting dominates. "
        "Only one language pair, one split point (half the steps) and one temperature were tried.",
        "",
    ]
    (directory / "results.md").write_text("\n".join(text))
    (directory / "results.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "curves"}, indent=2))
    return [directory / "results.md", directory / "results.json", directory / "curves.png"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/order_matters/sweep", help="the sweep directory")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    args = parser.parse_args(argv)
    output = (ROOT / args.output).resolve() if not Path(args.output).is_absolute() else Path(args.output)
    make_split()
    code = lowres("sweep", str(HERE / "sweep.yaml"), f"--output={output}", f"--parallel={args.parallel}")
    if code not in (0, 2) or not (output / "results.json").is_file():
        return code or 1
    for path in write_report(summarise(output), HERE / "results"):
        print(f"wrote {path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
