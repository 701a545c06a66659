"""PNG plots of a run from its metrics.jsonl: loss curves (per language when logged), the
learning-rate schedule and mixing rates over time. `lowres plot MODEL_DIR` redraws them; in a
notebook, `LiveLossPlot` redraws the loss curve in the cell's output while the run trains."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lowres.figures import save_png
from lowres.run_dir import PLOTS_DIR, read_metrics
from lowres.training.hooks import TrainHook, TrainRun, every


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    rows = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [s for s, _ in rows], [float(v) for _, v in rows]


def plot_run(model_dir: str | Path) -> list[Path]:
    """Writes MODEL_DIR/plots/{loss,learning_rate[,heldout_by_language][,mixing_rates]}.png; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(model_dir)
    out = Path(model_dir) / PLOTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in records for k in r})
    written = []

    figure, axis = plt.subplots(figsize=(7, 4))
    for key, label in (("loss", "loss"), ("nll", "nll"), ("eval/loss", "held-out nll")):
        steps, values = _series(records, key)
        if steps:
            axis.plot(steps, values, label=label)
    axis.set_xlabel("step")
    axis.set_ylabel("loss (nats/token)")
    axis.legend(fontsize=7)
    axis.set_title(f"{Path(model_dir).name}: training loss")
    save_png(figure, out / "loss.png", dpi=120, bbox_inches="tight")
    written.append(out / "loss.png")
    plt.close(figure)

    steps, values = _series(records, "learning_rate")
    figure, axis = plt.subplots(figsize=(7, 3))
    axis.plot(steps, values)
    axis.set_xlabel("step")
    axis.set_ylabel("learning rate")
    save_png(figure, out / "learning_rate.png", dpi=120, bbox_inches="tight")
    written.append(out / "learning_rate.png")
    plt.close(figure)

    per_language = [(metric, [k for k in keys if k.startswith("eval/") and k.count("/") == 2 and k.endswith(metric)])
                    for metric in ("/loss", "/bits_per_byte")]
    per_language = [(metric, found) for metric, found in per_language if found]
    if per_language:
        figure, axes = plt.subplots(1, len(per_language), figsize=(6 * len(per_language), 4), squeeze=False)
        for axis, (metric, found) in zip(axes[0], per_language):
            for key in found:
                axis.plot(*_series(records, key), label=key.split("/")[1])
            axis.set_xlabel("step")
            axis.set_ylabel("held-out " + ("nll (nats/token)" if metric == "/loss" else "bits per byte"))
        axes[0][-1].legend(fontsize=6, ncol=2)
        save_png(figure, out / "heldout_by_language.png", dpi=120, bbox_inches="tight")
        written.append(out / "heldout_by_language.png")
        plt.close(figure)

    rate_keys = [k for k in keys if k.startswith("mixing_rate/")]
    if rate_keys:
        figure, axis = plt.subplots(figsize=(7, 4))
        for key in rate_keys:
            axis.plot(*_series(records, key), label=key.removeprefix("mixing_rate/"))
        axis.set_xlabel("step")
        axis.set_ylabel("mixing rate")
        axis.legend(fontsize=7)
        save_png(figure, out / "mixing_rates.png", dpi=120, bbox_inches="tight")
        written.append(out / "mixing_rates.png")
        plt.close(figure)
    return written


class PlotHook(TrainHook):
    """Redraws the run's plots (process 0) when training ends."""

    name = "plots"

    def end(self, run: TrainRun, summary: Mapping[str, Any]) -> None:
        if run.is_main and summary["history"]:
            plot_run(run.model_dir)


def loss_figure_png(records: list[dict], title: str) -> bytes:
    """The training loss (and held-out loss when logged) over steps, as PNG bytes (no pyplot state)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5))
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    for key, label in (("loss", "training loss"), ("eval/loss", "held-out nll")):
        steps, values = _series(records, key)
        if steps:
            axis.plot(steps, values, marker="." if len(steps) < 30 else None, label=label)
    axis.set_xlabel("step")
    axis.set_ylabel("nats/token")
    axis.set_title(title)
    if axis.lines:
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


class LiveLossPlot(TrainHook):
    """Redraws the loss curve in a notebook's output (IPython display, updated in place) every `every`
    steps and at the end; outside IPython it does nothing."""

    name = "live_loss_plot"

    def __init__(self, every: int):
        self.every = every
        self._handle = None
        self._run: TrainRun | None = None

    def start(self, run: TrainRun) -> None:
        self._run = run

    def due(self, step: int, last_step: int) -> bool:
        return every(self.every, step, last_step)

    def run(self, info) -> None:
        self._draw(f"step {info.step}")  # no record of its own

    def end(self, run: TrainRun, summary: Mapping[str, Any]) -> None:
        self._draw(f"done at step {summary['final_step']}")

    def _draw(self, status: str) -> None:
        if self._run is None or not self._run.is_main:
            return
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        image = Image(data=loss_figure_png(read_metrics(self._run.model_dir), f"{self._run.model_dir.name}: {status}"))
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
