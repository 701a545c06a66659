"""`lowres plot`: redraw a run's PNG plots from its metrics."""

from __future__ import annotations

from pathlib import Path


def add_parser(commands) -> None:
    plot = commands.add_parser(
        "plot", help="redraw a run's PNG plots",
        description="Redraw DIR/plots/*.png from DIR/metrics.jsonl: loss curves, the learning-rate schedule and "
        "mixing rates (when logged).",
    )
    plot.add_argument("model_dir", metavar="DIR")


def run(args) -> int:
    from lowres.training.plots import plot_run

    for path in plot_run(Path(args.model_dir)):
        print(f"wrote {path}")
    return 0
