"""fit.json and fit.md of `lowres fit`: what was fitted on what, the parameters (with confidence
intervals when bootstrapped) and, for the annealing law, how well it predicted each other run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lowres.scaling.laws import FitResult


def _number(value: float) -> str:
    return f"{value:.6g}"


def parameter_rows(result: FitResult) -> list[tuple[str, str, str]]:
    """(name, value, interval or '') for each parameter, then each constant it was fitted with."""
    rows = []
    for name, value in result.params.items():
        low_high = result.intervals.get(name)
        rows.append((name, _number(value), f"[{_number(low_high[0])}, {_number(low_high[1])}]" if low_high else ""))
    rows += [(name, _number(value), "fixed") for name, value in result.constants.items()]
    return rows


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, for the terminal."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [header, *rows]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _parameter_header(result: FitResult) -> list[str]:
    ci = f"{100 * result.confidence:.0f}% CI ({result.resamples} bootstrap refits)" if result.intervals else "note"
    return ["parameter", "value", ci]


def prediction_rows(predictions: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    return [(p["run"], str(p["points"]), f"{p['mean_abs_error']:.4f}", f"{100 * p['max_rel_error']:.2f}%",
             f"{p['final_error']:+.4f} ({100 * p['final_rel_error']:+.2f}%)") for p in predictions]  # fmt: skip


PREDICTION_HEADER = ("predicted run", "points", "mean abs error", "max rel error", "final-step error")


def schedule_summary(result: FitResult, metric: str, fitted: Sequence[Mapping[str, Any]],
                     predictions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """fit.json of `lowres fit schedule`."""
    return {"law": result.law, "formula": result.formula, "metric": metric, "fit": result.to_dict(),
            "fitted_runs": list(fitted), "predictions": list(predictions)}  # fmt: skip


def schedule_markdown(summary: Mapping[str, Any], result: FitResult) -> str:
    fitted = ", ".join(f"`{r['run']}` ({r['points']} points)" for r in summary["fitted_runs"])
    parts = [
        "# LR-annealing law fit",
        "",
        (f"`{result.formula}` (Tissue et al.), S1 = sum of the learning rates so far, S2 = sum of m_i with "
         f"m_i = lambda m_(i-1) + (eta_(i-1) - eta_i); fitted on metric `{summary['metric']}` of {fitted}."),
        "",
        markdown_table(_parameter_header(result), parameter_rows(result)),
        "",
        (f"Residuals on the fitted points: RMSE {result.residuals.rmse:.4f}, mean relative "
         f"{100 * result.residuals.mean_abs_rel:.2f}%, max relative {100 * result.residuals.max_abs_rel:.2f}%."),
    ]
    if summary["predictions"]:
        parts += ["", "## Predictions from the learning rates alone", "",
                  markdown_table(PREDICTION_HEADER, prediction_rows(summary["predictions"]))]  # fmt: skip
    return "\n".join(parts) + "\n"


def power_summary(result: FitResult, table: str, y: str, xs: Sequence[str]) -> dict[str, Any]:
    """fit.json of `lowres fit power`."""
    return {"law": result.law, "formula": result.formula, "table": table, "y": y, "x": list(xs),
            "fit": result.to_dict()}  # fmt: skip


def power_markdown(summary: Mapping[str, Any], result: FitResult) -> str:
    names = {"power": "Power law", "joint": "Joint power law in N and D", "nmt": "Encoder-decoder (NMT) law"}
    variables = " and ".join(f"`{x}`" for x in summary["x"])
    parts = [
        f"# {names[result.law]} fit",
        "",
        (f"`{result.formula}` fitted to `{summary['y']}` over {variables} ({result.num_points} rows of "
         f"`{summary['table']}`)."),
        "",
        markdown_table(_parameter_header(result), parameter_rows(result)),
        "",
        (f"Residuals: RMSE {result.residuals.rmse:.4f}, mean relative {100 * result.residuals.mean_abs_rel:.2f}%, "
         f"max relative {100 * result.residuals.max_abs_rel:.2f}%."),
    ]
    return "\n".join(parts) + "\n"
