"""`lowres fit schedule` and `lowres fit power`: scaling-law fits (METHODS section 11).

schedule fits the LR-annealing law L(s) = L0 + A S1^-alpha - C S2 on one or two runs' loss curves and
predicts other runs' curves from their learning-rate schedules alone; power fits L = E + A x^-alpha, the
joint law in N and D, or the encoder-decoder (NMT) law on a CSV table such as a sweep's results.csv,
with bootstrap confidence intervals. Both write OUT/fit.json, OUT/fit.md and PNG figures.
"""

from __future__ import annotations

from pathlib import Path

from lowres.cli.common import add_action_group, check_writable
from lowres.errors import DataError, UsageError

LAW_COLUMNS = {"power": ("x",), "joint": ("N", "D"), "nmt": ("N_e", "N_d")}


def add_parser(commands) -> None:
    actions = add_action_group(
        commands, "fit", help="fit scaling laws: LR annealing over runs, power laws over a sweep",
        description="Fit the scaling laws of METHODS section 11 and write OUT/fit.json, OUT/fit.md and PNG figures.",
    )  # fmt: skip
    schedule = actions.add_parser(
        "schedule", help="fit the LR-annealing law on runs, predict other schedules",
        description="Fit L(s) = L0 + A*S1^-alpha - C*S2 (Tissue et al.; S1: the sum of the learning rates so far, "
        "S2: the annealing area) jointly on the --fit runs' curves, with every step's learning rate rebuilt from "
        "each run's config.gin and checked against its metrics.jsonl; then predict each --predict run's curve "
        "from its learning rates alone and report the errors.",
    )
    schedule.add_argument("--fit", action="append", required=True, metavar="DIR", dest="fit_dirs",
                          help="a `lowres train` run directory to fit on; repeatable (one or two runs, e.g. a "
                          "constant and a cosine schedule)")  # fmt: skip
    schedule.add_argument("--predict", action="append", default=[], metavar="DIR", dest="predict_dirs",
                          help="a run directory whose curve is predicted from its schedule; repeatable")
    schedule.add_argument("--metric", default="loss",
                          help="the metrics.jsonl key to fit: loss (training loss, the trainer's interval means; "
                          "default), nll, eval/loss, ...")  # fmt: skip
    schedule.add_argument("--skip_steps", type=int, default=None, metavar="N",
                          help="leave out points within the first N steps (default: each run's warm-up)")
    schedule.add_argument("--lam", type=float, default=0.999, help="annealing momentum lambda of S2 (default 0.999)")
    schedule.add_argument("--output", required=True, metavar="OUT", help="directory for fit.json, fit.md, *.png")
    power = actions.add_parser(
        "power", help="fit a power law over a table of runs (a sweep's results.csv)",
        description="Fit --law power: L = E + A*x^-alpha (--x); joint: L = E + A*N^-alpha + B*D^-beta (--x N, "
        "--x2 D); nmt: L = a*(N_e0/N_e)^p_e*(N_d0/N_d)^p_d + L_inf (--x N_e, --x2 N_d; N_e0, N_d0: the smallest "
        "sizes in the table). Rows with an empty cell, or a state column other than done, are skipped; repeated "
        "sizes (seeds) all count. Confidence "
        "intervals: percentiles of --bootstrap refits on rows drawn with replacement.",
    )
    power.add_argument("--table", required=True, metavar="CSV", help="CSV file with a header row, one row per run")
    power.add_argument("--y", required=True, metavar="COLUMN", help="the loss column to fit")
    power.add_argument("--x", required=True, metavar="COLUMN", help="the size column (N; N_e for nmt)")
    power.add_argument("--x2", default=None, metavar="COLUMN", help="the second size column (D for joint, N_d for nmt)")
    power.add_argument("--law", choices=tuple(LAW_COLUMNS), default="power", help="the law to fit (default power)")
    power.add_argument("--bootstrap", type=int, default=200, metavar="N",
                       help="bootstrap refits for the 95%% confidence intervals (default 200; 0: none)")
    power.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    power.add_argument("--output", required=True, metavar="OUT", help="directory for fit.json, fit.md, fit.png")


def _prediction(curve, result) -> dict:
    from lowres.scaling.laws import predict_curve, prediction_errors

    return prediction_errors(predict_curve(result.params, curve, result.constants["lambda"]), curve.values)


def run_schedule(args) -> int:
    from lowres.files import write_atomic, write_json
    from lowres.scaling import report
    from lowres.scaling.curves import read_curve
    from lowres.scaling.laws import fit_annealing_law, fitted_points
    from lowres.scaling.plots import plot_curves

    if not 0.0 <= args.lam < 1.0:
        raise UsageError(f"--lam={args.lam}: the annealing momentum lies in [0, 1), e.g. 0.999")
    if args.skip_steps is not None and args.skip_steps < 0:
        raise UsageError(f"--skip_steps={args.skip_steps}: give a number of steps >= 0")
    fit_curves = [read_curve(d, args.metric) for d in args.fit_dirs]
    predict_curves = [read_curve(d, args.metric) for d in args.predict_dirs]
    output = Path(args.output)
    check_writable(output, "--output")
    try:
        result = fit_annealing_law(fit_curves, lam=args.lam, skip_steps=args.skip_steps)
    except DataError as error:
        raise DataError(f"--fit {' '.join(args.fit_dirs)} (--metric={args.metric}): {error}") from error
    used = fitted_points(fit_curves, args.skip_steps)
    fitted = [{"run": d, "points": len(c.steps)} for d, c in zip(args.fit_dirs, used)]
    predictions = []
    for directory, curve in zip(args.predict_dirs, fitted_points(predict_curves, args.skip_steps)):
        if not len(curve.steps):
            raise DataError(f"--predict {directory}: no {args.metric!r} point after the skipped steps to compare with")
        predictions.append({"run": directory, **_prediction(curve, result)})

    summary = report.schedule_summary(result, args.metric, fitted, predictions)
    print(f"{result.formula}, lambda = {args.lam}, fitted on {result.num_points} points of {args.metric!r}")
    print(report.text_table(("parameter", "value", ""), report.parameter_rows(result)))
    if predictions:
        print()
        print(report.text_table(report.PREDICTION_HEADER, report.prediction_rows(predictions)))
    written = [write_json(output / "fit.json", summary),
               write_atomic(output / "fit.md", report.schedule_markdown(summary, result)),
               plot_curves(result, used, output / "fit.png", f"annealing law fitted on {args.metric}")]  # fmt: skip
    if predictions:
        written.append(plot_curves(result, fitted_points(predict_curves, args.skip_steps), output / "prediction.png",
                                   f"{args.metric} predicted from the learning rates"))  # fmt: skip
    for path in written:
        print(f"wrote {path}")
    return 0


def run_power(args) -> int:
    from lowres.files import write_atomic, write_json
    from lowres.scaling import laws, report
    from lowres.scaling.plots import plot_power
    from lowres.scaling.tables import read_columns

    if args.law == "power" and args.x2:
        raise UsageError(f"--x2={args.x2}: the power law has one size (--x); use --law joint or --law nmt for two")
    if args.law != "power" and not args.x2:
        raise UsageError(f"--law {args.law} needs two size columns: --x {LAW_COLUMNS[args.law][0]} --x2 "
                         f"{LAW_COLUMNS[args.law][1]}")  # fmt: skip
    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap={args.bootstrap}: give a number of refits >= 0 (0: no intervals)")
    options = [("--x", args.x)] + ([("--x2", args.x2)] if args.x2 else [])
    *sizes, y = read_columns(args.table, [(name, option) for option, name in options] + [(args.y, "--y")])
    output = Path(args.output)
    check_writable(output, "--output")
    fit = {"power": laws.fit_power_law, "joint": laws.fit_joint_law, "nmt": laws.fit_nmt_law}[args.law]
    try:
        result = fit(*sizes, y)
        if args.bootstrap:
            result = laws.bootstrap(fit, [*sizes, y], result, resamples=args.bootstrap, seed=args.seed)
    except DataError as error:
        raise DataError(f"{args.table} (--y={args.y}): {error}") from error

    names = [name for _, name in options]
    summary = report.power_summary(result, args.table, args.y, names)
    print(f"{result.formula} fitted to {args.y!r} on {result.num_points} rows of {args.table}")
    header = ("parameter", "value", f"{100 * result.confidence:.0f}% CI" if result.intervals else "")
    print(report.text_table(header, report.parameter_rows(result)))
    written = [write_json(output / "fit.json", summary),
               write_atomic(output / "fit.md", report.power_markdown(summary, result)),
               plot_power(result, sizes, y, names, args.y, output / "fit.png")]  # fmt: skip
    for path in written:
        print(f"wrote {path}")
    return 0


def run(args) -> int:
    return {"schedule": run_schedule, "power": run_power}[args.fit_command](args)
