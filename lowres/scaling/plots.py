"""PNG figures of the fits: measured curves against the annealing law; points, fitted curve and
bootstrap band of a power law; predicted against measured for the laws in two variables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lowres.figures import save_png
from lowres.scaling.laws import Curve, FitResult, annealing_loss, predict


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(result: FitResult, curves: Sequence[Curve], path: Path, title: str) -> Path:
    """Each measured curve (points) and the law along its schedule (line, every update)."""
    plt = _pyplot()
    lam = result.constants["lambda"]
    figure, axis = plt.subplots(figsize=(7, 4))
    for index, curve in enumerate(curves):
        color = f"C{index}"
        axis.plot(curve.steps, curve.values, ".", color=color, markersize=3, alpha=0.6, label=f"{curve.name} measured")
        law = annealing_loss(result.params, curve.learning_rates, lam, curve.warmup_steps)
        first = max(curve.warmup_steps, 1)
        axis.plot(np.arange(first, len(law)), law[first:], "-", color=color, linewidth=1.5, label=f"{curve.name} law")
    values = np.concatenate([c.values for c in curves]) if curves else np.array([1.0])
    low, high = np.nanpercentile(values, [0, 98])
    axis.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.legend(fontsize=7)
    return save_png(figure, path, dpi=120, bbox_inches="tight")


def plot_power(result: FitResult, columns: Sequence[np.ndarray], y: np.ndarray, names: Sequence[str],
               y_name: str, path: Path) -> Path:  # fmt: skip
    """power: y over x (log x), the fitted curve and its bootstrap band; joint, nmt: fitted against
    measured, one point per row, with the diagonal."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    if result.law == "power":
        x = columns[0]
        grid = np.geomspace(x.min(), x.max(), 200)
        axis.plot(x, y, "o", markersize=4, label="measured")
        axis.plot(grid, predict("power", result.params, result.constants, grid), "-", label="fit")
        if result.draws:
            curves = np.array([predict("power", d, result.constants, grid) for d in result.draws])
            tail = 100 * (1 - result.confidence) / 2
            low, high = np.percentile(curves, [tail, 100 - tail], axis=0)
            axis.fill_between(grid, low, high, alpha=0.25, label=f"{100 * result.confidence:.0f}% band")
        axis.set_xscale("log")
        axis.set_xlabel(names[0])
    else:
        fitted = predict(result.law, result.params, result.constants, *columns)
        axis.plot(y, fitted, "o", markersize=4)
        ends = [min(y.min(), fitted.min()), max(y.max(), fitted.max())]
        axis.plot(ends, ends, "k--", linewidth=0.8, label="fitted = measured")
        axis.set_xlabel(f"measured {y_name}")
        axis.set_ylabel(f"fitted {y_name} ({', '.join(names)})")
    if result.law == "power":
        axis.set_ylabel(y_name)
    axis.set_title(result.formula, fontsize=9)
    axis.legend(fontsize=7)
    return save_png(figure, path, dpi=120, bbox_inches="tight")
