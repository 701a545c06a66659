# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A research notebook: a width sweep, per-language comparison and a fitted scaling curve
#
# Runs a `lowres sweep` over model widths (or loads one you have already run), compares the runs per
# language, and fits the power law L(N) = E + A·N^-α to the final held-out bits per byte against the
# parameter count, with a bootstrap interval.
#
# **What it needs.** A CPU runtime is enough: about 2 GB of RAM and about 6 minutes on 2 cores for the
# default 10 runs (5 widths × 2 seeds, 300 steps each; estimated from the smaller CI run, not timed at
# this size). On a TPU runtime set `PARALLEL = 1`: only one process can hold a TPU, and each run is a
# process of its own. Untested on TPU and GPU.
#
# **What it can show.** A few hundred steps of models this small on the built-in corpus show the
# machinery and the shape of a comparison; they are not a scaling law. Fit laws on runs trained to a
# fixed token budget, with several seeds, and read the interval before the exponent.

# %% [markdown]
# ## Install
# In Colab this clones the repository and installs it; where lowres is installed it does nothing.

# %%
import importlib.util
import os
import subprocess
import sys

LOWRES_REPOSITORY = "https://github.com/lowres-nlp/lowres"  # in a fork: your own

if importlib.util.find_spec("lowres") is None:
    if not os.path.exists("lowres/pyproject.toml"):
        subprocess.run(["git", "clone", "--depth=1", LOWRES_REPOSITORY, "lowres"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "./lowres"], check=True)
    sys.path.insert(0, os.path.abspath("lowres"))  # an editable install is otherwise seen after a restart
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]  # the `lowres` command

# %% tags=["parameters"]
# Settings. CI runs this notebook with four tiny widths and a few steps.
SWEEP_DIR = None  # a finished `lowres sweep` output to load instead of running the sweep below
SWEEP_OUTPUT = "runs/notebook_width_sweep"
WIDTHS = [32, 48, 64, 96, 128]  # d_model of a 2-layer decoder-only model (d_ff = 4 x d_model)
SEEDS = [0, 1]
NUM_STEPS = 300
LANGUAGES = ["eng", "pan", "yor", "cym"]
PARALLEL = 2  # runs trained at once (each pinned to its share of the CPU cores)

# %% [markdown]
# ## Run the sweep (or load one)
# The spec below is an ordinary `lowres sweep` YAML file: the same sweep runs from a shell with
# `lowres sweep SPEC --output=DIR --parallel=2`, on SLURM with `--launcher=slurm`. Each run trains in
# `DIR/runs/<name>/`; a rerun skips finished runs and resumes interrupted ones. Progress lines (runs
# finished, ETA) appear below as runs end.

# %%
import logging
from pathlib import Path

import yaml

from lowres.sweeps.sweep import run_sweep

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True)

if SWEEP_DIR is None:
    sweep_dir = Path(SWEEP_OUTPUT)
    spec = {
        "gin_files": ["smoke.gin"],
        "bindings": {
            "ModelConfig.architecture": "decoder_only",
            "ModelConfig.preset": "tiny",
            "DataConfig.objective": "causal_lm",
            "DataConfig.decoder_attention": "causal",
            "DataConfig.languages": list(LANGUAGES),
            "TrainConfig.num_steps": NUM_STEPS,
            "TrainConfig.log_every": max(1, NUM_STEPS // 10),
            "CheckpointConfig.save_interval_steps": NUM_STEPS,
            "EvalConfig.every_steps": NUM_STEPS,  # held-out bits per byte per language at the end
            "EvalConfig.batches_per_task": 2,
            "EvalConfig.decode_examples": 0,
        },
        "arms": [{"name": f"d{width}", "bindings": {"ModelConfig.overrides": {"d_model": width, "d_ff": 4 * width}}}
                 for width in WIDTHS],
        "seeds": list(SEEDS),
        "seed_binding": ["TrainConfig.seed", "DataConfig.seed"],
        "metrics": {"loss": "min", "eval/bits_per_byte": "min"},
    }
    sweep_dir.mkdir(parents=True, exist_ok=True)
    spec_path = sweep_dir.parent / f"{sweep_dir.name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    print(spec_path.read_text())
    run_sweep(spec_path, sweep_dir, parallel=PARALLEL)
else:
    sweep_dir = Path(SWEEP_DIR)

# %% [markdown]
# ## The results table
# `results.json` / `.csv` / `.md` hold one row per run (state, swept values, steps, seconds, parameters,
# final and best of each metric, final bits per byte per language) and the mean ± sd over seeds.

# %%
import json

from IPython.display import Image, Markdown, display

results = json.loads((sweep_dir / "results.json").read_text())
rows = [row for row in results["runs"] if row["state"] == "done"]
print(f"{len(rows)} of {len(results['runs'])} runs done")
display(Markdown((sweep_dir / "results.md").read_text()))

# %% [markdown]
# ## Curves and languages side by side

# %%
import matplotlib.pyplot as plt
import numpy as np

from lowres.figures import save_png
from lowres.run_dir import read_metrics


def show(figure, name: str) -> None:
    """Saves the figure beside the sweep's results and shows the PNG (whatever pyplot's backend)."""
    display(Image(filename=str(save_png(figure, sweep_dir / name))))


languages = sorted({key.removeprefix("bpb ") for row in rows for key in row if key.startswith("bpb ")})
figure, (curves, bars) = plt.subplots(1, 2, figsize=(13, 4))
for row in rows:
    records = [r for r in read_metrics(sweep_dir / "runs" / row["run"]) if "loss" in r]
    curves.plot([r["step"] for r in records], [r["loss"] for r in records], label=row["run"])
curves.set_xlabel("step")
curves.set_ylabel("training loss (nats/token)")
curves.legend(fontsize=7)

arms = sorted({row["arm"] for row in rows}, key=lambda arm: min(r["params"] for r in rows if r["arm"] == arm))
width = 0.8 / max(1, len(arms))
for i, arm in enumerate(arms):
    per_seed = [[r.get(f"bpb {lang}", np.nan) for lang in languages] for r in rows if r["arm"] == arm]
    mean, spread = np.nanmean(per_seed, axis=0), np.nanstd(per_seed, axis=0)
    bars.bar(np.arange(len(languages)) + i * width, mean, width, yerr=spread if len(per_seed) > 1 else None,
             label=arm)
bars.set_xticks(np.arange(len(languages)) + 0.4 - width / 2, languages, rotation=30, ha="right")
bars.set_ylabel("held-out bits per byte (lower is better)")
bars.legend(fontsize=7)
figure.tight_layout()
show(figure, "notebook_comparison.png")

# %% [markdown]
# ## Fit L(N) = E + A·N^-α
# `lowres.scaling` is what `lowres fit power` runs: a least-squares fit with E, A ≥ 0, and a seeded
# bootstrap over the runs for the intervals. A power law has three parameters, so it needs at least
# four runs.

# %%
from lowres.scaling.laws import bootstrap, fit_power_law, predict

sizes = np.array([row["params"] for row in rows], float)
values = np.array([row["final eval/bits_per_byte"] for row in rows], float)
fit = bootstrap(fit_power_law, [sizes, values], fit_power_law(sizes, values), resamples=200, seed=0)
print(f"fit: {fit.formula} over {fit.num_points} runs ({fit.resamples} bootstrap refits)")
for name, value in fit.params.items():
    low, high = fit.intervals[name]
    print(f"  {name} = {value:.4g}  (95% interval {low:.4g} .. {high:.4g})")
print(f"  residual RMSE {fit.residuals.rmse:.4f} bits per byte")

grid = np.geomspace(sizes.min() / 1.5, sizes.max() * 4, 100)
figure, axis = plt.subplots(figsize=(6, 4))
axis.scatter(sizes, values, label="runs")
axis.plot(grid, predict("power", fit.params, {}, grid), label=fit.formula)
axis.set_xscale("log")
axis.set_xlabel("parameters")
axis.set_ylabel("held-out bits per byte")
axis.legend(fontsize=7)
figure.tight_layout()
show(figure, "notebook_fit.png")
