"""The LR-annealing law recipe in one command (METHODS section 11):

    python experiments/lr_annealing/run.py --output runs/lr_annealing/sweep

1. `lowres data split`: six FLORES-200 dev languages, 20% of the documents held out
   (runs/lr_annealing/data, the path the sweep spec names; skipped when present);
2. `lowres sweep experiments/lr_annealing/sweep.yaml`: one model trained with a constant, a cosine
   and a warm-up-stable-decay (WSD) schedule, 3 seeds each (skips finished runs, resumes);
3. `lowres fit schedule`, once per seed: the law fitted on that seed's constant and cosine
   training-loss curves, predicting every WSD run's curve from its schedule alone;
4. the report: experiments/lr_annealing/results/ (results.md, results.json, the fit's files and PNGs),
   which sets the prediction error beside the seed-to-seed spread of the WSD curves and beside a
   naive prediction (the cosine run's own curve).
"""

from __future__ import annotations

import argparse
import os
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "runs" / "lr_annealing" / "data"
FLORES = "flores:../shared/data/flores200/dev"
LANGUAGES = "eng_Latn,fra_Latn,deu_Latn,spa_Latn,swh_Latn,yor_Latn"
SEEDS = (0, 1, 2)
# The paper's lambda is 0.999 (an annealing memory of about 1,000 steps); these shorter memories are
# tried afterwards, on seed 0, as a sensitivity check: choosing one after seeing them would be post hoc.
SENSITIVITY_LAMBDAS = (0.99, 0.95, 0.9)


def lowres(*args: str) -> int:
    return subprocess.run([sys.executable, "-m", "lowres.cli", *args], cwd=ROOT, check=False).returncode


def training_curve(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in records if isinstance(r.get("loss"), (int, float))}


def seed_spread(curves: list[dict[int, float]], after: int) -> dict[str, float]:
    """How far apart the WSD seeds' logged losses are: mean over steps of their standard deviation,
    the largest relative deviation from the seed mean, and the final step's standard deviation."""
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    steps = [s for s in steps if s > after]
    sds = [statistics.stdev([c[s] for c in curves]) for s in steps]
    rel = [abs(c[s] - statistics.fmean(d[s] for d in curves)) / statistics.fmean(d[s] for d in curves)
           for s in steps for c in curves]
    return {"mean_sd": statistics.fmean(sds), "max_rel_deviation": max(rel), "final_sd": sds[-1]}


def naive_errors(cosine: dict[int, float], wsd: dict[int, float], after: int) -> dict[str, float]:
    """The error of 'predicting' the WSD curve with the cosine run's curve: the bar a law must clear."""
    steps = [s for s in sorted(set(cosine) & set(wsd)) if s > after]
    errors = [abs(cosine[s] - wsd[s]) for s in steps]
    return {"mean_abs_error": statistics.fmean(errors),
            "max_rel_error": max(e / wsd[s] for e, s in zip(errors, steps)),
            "final_error": cosine[steps[-1]] - wsd[steps[-1]]}


def report(output: Path, fit_dirs: dict[int, Path], results: Path) -> list[Path]:
    """results.md/json: each seed's fitted parameters, its WSD predictions, the seed spread and the naive bar."""
    fits = {seed: json.loads((directory / "fit.json").read_text()) for seed, directory in fit_dirs.items()}
    runs = output / "runs"
    wsd = [training_curve(runs / f"wsd-s{seed}") for seed in SEEDS]
    warmup = 30
    spread = seed_spread(wsd, warmup)
    naive = [naive_errors(training_curve(runs / f"cosine-s{seed}"), wsd[seed], warmup) for seed in SEEDS]
    predictions = [p for fit in fits.values() for p in fit["predictions"]]
    same_seed = [p for seed, fit in fits.items() for p in fit["predictions"] if p["run"].endswith(f"wsd-s{seed}")]

    def stat(values: list[float]) -> tuple[float, float]:
        return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)

    law_mae, law_final = stat([p["mean_abs_error"] for p in same_seed]), stat([abs(p["final_error"]) for p in same_seed])
    naive_mae, naive_final = stat([n["mean_abs_error"] for n in naive]), stat([abs(n["final_error"]) for n in naive])
    all_mae = stat([p["mean_abs_error"] for p in predictions])
    params = {name: stat([fit["fit"]["params"][name] for fit in fits.values()]) for name in ("L0", "A", "alpha", "C")}
    summary = {"fits": fits, "parameters_over_seeds": params, "wsd_seed_spread": spread,
               "naive_cosine_as_wsd": naive, "law_same_seed_mean_abs_error": law_mae,
               "law_same_seed_final_abs_error": law_final, "law_all_pairs_mean_abs_error": all_mae,
               "naive_mean_abs_error": naive_mae, "naive_final_abs_error": naive_final}
    rows = "\n".join(
        f"| {seed} | " + " | ".join(f"{fits[seed]['fit']['params'][n]:.4f}" for n in ("L0", "A", "alpha", "C")) + " | "
        + " | ".join(f"{p['mean_abs_error']:.4f} ({p['final_error']:+.4f})" for p in fits[seed]["predictions"]) + " |"
        for seed in fits)
    beats_naive = law_mae[0] + law_mae[1] < naive_mae[0] and law_final[0] < naive_final[0]
    within_noise = law_mae[0] <= 2 * spread["mean_sd"]
    conclusion = [
        f"Fitted on a seed's constant and cosine runs, the law predicts the same seed's WSD curve with a mean "
        f"absolute error of {law_mae[0]:.4f} ± {law_mae[1]:.4f} nats/token over the 3 seeds (final step "
        f"{law_final[0]:.4f} ± {law_final[1]:.4f}); over all 9 fit/WSD pairs {all_mae[0]:.4f} ± {all_mae[1]:.4f}. "
        f"Using the cosine run's own curve as the guess is off by {naive_mae[0]:.4f} ± {naive_mae[1]:.4f} (final "
        f"step {naive_final[0]:.4f} ± {naive_final[1]:.4f}). The WSD seeds differ from each other by "
        f"{spread['mean_sd']:.4f} on average (standard deviation across 3 seeds).",
        ("The law predicts the WSD curve better than the naive guess, beyond the seeds' spread, "
         if beats_naive else
         "The law does not predict the WSD curve clearly better than the naive guess (the cosine run's own curve), ")
        + ("and its error is within twice the seed-to-seed spread: at this scale the prediction is as good as "
           "the noise allows." if within_noise else
           "and its error is larger than twice the seed-to-seed spread: the law misses part of the curve."),
        f"Every fit puts L0 at its lower bound ({params['L0'][0]:.4f}): 400 steps is the fast-falling start of the "
        "curve, so the irreducible loss cannot be told apart from the power-law term, and the largest relative "
        "errors sit just after warm-up. With the paper's lambda = 0.999 the annealing memory (about 1,000 steps) is "
        "longer than the whole run and the law under-predicts the drop of WSD's final decay; shorter memories "
        "(table above) bring the final-step error down, but lambda was not chosen in advance, so that is a "
        "hypothesis for a longer run, not a result.",
    ]
    lam = next(iter(fits.values()))["fit"]["constants"].get("lam", 0.999)
    sensitivity = {}
    for other in (lam, *SENSITIVITY_LAMBDAS):
        path = fit_dirs[0] / "fit.json" if other == lam else results / f"lambda-{other}" / "fit.json"
        if path.is_file():
            found = json.loads(path.read_text())
            sensitivity[other] = {"C": found["fit"]["params"]["C"],
                                  "mean_abs_error": stat([p["mean_abs_error"] for p in found["predictions"]]),
                                  "final_error": stat([p["final_error"] for p in found["predictions"]])}
    summary["lambda_sensitivity_seed0"] = {str(k): v for k, v in sensitivity.items()}
    sensitivity_rows = "\n".join(
        f"| {other} | {v['C']:.3f} | {v['mean_abs_error'][0]:.4f} ± {v['mean_abs_error'][1]:.4f} | "
        f"{v['final_error'][0]:+.4f} ± {v['final_error'][1]:.4f} |" for other, v in sensitivity.items())
    text = [
        "# The LR-annealing scaling law: fit on constant + cosine, predict WSD",
        "",
        "Generated by `python experiments/lr_annealing/run.py` from the runs of `experiments/lr_annealing/sweep.yaml`",
        "and `lowres fit schedule`; every number is read from the runs and the fits.",
        "",
        "## Setup",
        "",
        f"- Data: FLORES-200 dev, six languages ({LANGUAGES.replace(',', ', ')}), 20% of the documents held out.",
        "- Model: decoder-only `mini` (d_model 128, 4 layers), causal LM, 4,000-piece SentencePiece vocabulary; batch "
        "8 x 128 tokens, 400 steps, AdamW peak 2e-3 after 30 warm-up steps.",
        "- Schedules: constant; cosine to 0.1 x peak; WSD (constant, then a linear decay to 0.1 x peak over the last "
        "25% of steps). Seeds 0, 1, 2 for each (initialisation and data order).",
        f"- Law: L(s) = L0 + A S1^-alpha - C S2, lambda = {lam}, fitted for each seed on that seed's constant and "
        "cosine training-loss curves (the trainer's means over each 10-step interval, modelled as such) after "
        "warm-up, then used to predict all three WSD runs from their schedules.",
        "",
        "## Fits and predictions",
        "",
        "Each row is one fit; the last three columns are its WSD predictions (mean absolute error over the logged "
        "steps, final-step error in brackets).",
        "",
        "| fit on seed | L0 | A | alpha | C | WSD seed 0 | WSD seed 1 | WSD seed 2 |",
        "|---|---|---|---|---|---|---|---|",
        rows,
        "",
        "Parameters over the three fits (mean ± sd): "
        + ", ".join(f"{name} {m:.4f} ± {sd:.4f}" for name, (m, sd) in params.items()) + ".",
        "",
        f"Seed-to-seed spread of the WSD curves: mean standard deviation {spread['mean_sd']:.4f}, final-step "
        f"standard deviation {spread['final_sd']:.4f}, largest relative deviation from the seed mean "
        f"{100 * spread['max_rel_deviation']:.2f}%.",
        "",
        "![fit on seed 0](fit.png)",
        "",
        "![prediction from seed 0's fit](prediction.png)",
        "",
        "## Sensitivity to lambda (fit on seed 0, predicting the three WSD runs)",
        "",
        "| lambda | C | mean abs error | final-step error |",
        "|---|---|---|---|",
        sensitivity_rows,
        "",
        "## Conclusion",
        "",
        *[part for line in conclusion for part in (line, "")],
        "",
        "## What this run can and cannot show",
        "",
        "- It can show whether two cheap runs pin down the law well enough to predict a third schedule's whole "
        "curve at this scale, and how that error compares with seed noise and with a naive guess.",
        "- It cannot show the law at the paper's scale (hundreds of millions of parameters, tens of thousands of "
        "steps): 400 steps on about 0.9 MB of text is the early, fast-falling part of the curve, where S1 dominates "
        "and the small text is seen for several epochs.",
        "",
    ]
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.md").write_text("\n".join(text))
    (results / "results.json").write_text(json.dumps(summary, indent=2))
    return [results / "results.md", results / "results.json"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="runs/lr_annealing/sweep", help="the sweep directory")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time")
    args = parser.parse_args(argv)
    output = Path(args.output) if Path(args.output).is_absolute() else ROOT / args.output
    if not (DATA / "split.json").is_file():
        code = lowres("data", "split", FLORES, f"--langs={LANGUAGES}", f"--output={DATA}", "--heldout_fraction=0.2")
        if code:
            return code
    code = lowres("sweep", str(HERE / "sweep.yaml"), f"--output={output}", f"--parallel={args.parallel}")
    if code:
        return code
    results = HERE / "results"
    # Relative to the repository (the fits run there), so the committed fit files name no machine's paths.
    runs = Path(os.path.relpath(output / "runs", ROOT))
    fit_dirs = {}
    for seed in SEEDS:
        fit_dirs[seed] = results / f"fit-s{seed}"
        if fit_dirs[seed].exists():
            shutil.rmtree(fit_dirs[seed])
        code = lowres("fit", "schedule", f"--fit={runs / f'constant-s{seed}'}", f"--fit={runs / f'cosine-s{seed}'}",
                      *[f"--predict={runs / f'wsd-s{other}'}" for other in SEEDS], f"--output={fit_dirs[seed]}")
        if code:
            return code
    for png in fit_dirs[0].glob("*.png"):
        shutil.copy(png, results / png.name)
    for lam in SENSITIVITY_LAMBDAS:  # seed 0 only; the figures are left out
        directory = results / f"lambda-{lam}"
        if directory.exists():
            shutil.rmtree(directory)
        code = lowres("fit", "schedule", f"--fit={runs / 'constant-s0'}", f"--fit={runs / 'cosine-s0'}",
                      *[f"--predict={runs / f'wsd-s{other}'}" for other in SEEDS], f"--lam={lam}",
                      f"--output={directory}")
        if code:
            return code
        for png in directory.glob("*.png"):
            png.unlink()
    for path in report(output, fit_dirs, results):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
