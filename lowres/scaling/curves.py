"""A run directory's loss curve with the learning rate of every update, for the annealing law.

metrics.jsonl logs the learning rate only every `log_every` steps, but S1 and S2 need all of them: the
schedule is rebuilt with the trainer's own `learning_rate_schedule` from the OptimizerConfig and
TrainConfig.num_steps bound in the run's config.gin, and checked against every logged learning rate
(a logged step s carries the rate of update s), so a wrong reconstruction (a run resumed under other
settings, say) stops with an error instead of a silently wrong fit.

config.gin is read with gin's own parser, statement by statement: no configurable has to be registered
(so neither the trainer nor TensorFlow is imported) and the process's gin config is left alone.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from lowres.errors import ConfigError, DataError, MissingFileError
from lowres.run_dir import CONFIG_FILE, METRICS_FILE, read_metrics
from lowres.scaling.laws import Curve

# Metrics the trainer averages over the updates since the previous log (lowres.training.metrics.IntervalMeans);
# any other metric (eval/loss, eval/<lang>/loss, ...) is measured on the parameters at its step.
INTERVAL_MEANS = ("loss", "nll")


@dataclasses.dataclass(frozen=True)
class _Macro:
    name: str


@dataclasses.dataclass(frozen=True)
class _Reference:
    name: str


def _parser_delegate():
    from gin import config_parser

    class Delegate(config_parser.ParserDelegate):
        """Keeps `%MACRO` and `@reference` as names instead of resolving them against registered configurables."""

        def configurable_reference(self, scoped_configurable_name, evaluate):
            return _Reference(scoped_configurable_name)

        def macro(self, macro_name):
            return _Macro(macro_name)

    return Delegate()


def read_bindings(path: Path) -> dict[tuple[str, str], Any]:
    """The unscoped bindings of a gin file as {(configurable, parameter): value}, `%MACRO`s replaced by
    their values; module-qualified names (`lowres.training.optimizer.OptimizerConfig`) are shortened."""
    from gin import config_parser

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise MissingFileError(
            f"{path} not found: {path.parent} is not a run directory written by `lowres train`"
        ) from error
    try:
        statements = list(config_parser.ConfigParser(text, _parser_delegate()))
    except SyntaxError as error:
        raise DataError(f"{path}:{error.lineno}: not a gin config ({error.msg})") from error
    macros, bindings = {}, {}
    for statement in statements:
        if not isinstance(statement, config_parser.BindingStatement) or statement.scope:
            continue
        if not statement.arg_name:
            macros[statement.selector] = statement.value
        else:
            bindings[(statement.selector.rsplit(".", 1)[-1], statement.arg_name)] = statement.value
    for key, value in bindings.items():
        while isinstance(value, _Macro) and value.name in macros:
            value = macros[value.name]
        bindings[key] = value
    return bindings


@dataclasses.dataclass(frozen=True)
class RunSchedule:
    """A run's learning-rate schedule: the optimiser settings and the number of steps it spans."""

    optimizer: Any  # lowres.training.optimizer.OptimizerConfig
    num_steps: int

    def learning_rates(self) -> np.ndarray:
        """The learning rate of update 1 .. num_steps (index t: update t + 1), as the trainer computes it."""
        import jax.numpy as jnp

        from lowres.training.optimizer import learning_rate_schedule

        return np.asarray(learning_rate_schedule(self.optimizer, self.num_steps)(jnp.arange(self.num_steps)), float)


def read_schedule(model_dir: str | Path) -> RunSchedule:
    """OptimizerConfig and TrainConfig.num_steps as bound in MODEL_DIR/config.gin (unbound fields: the defaults)."""
    from lowres.training.optimizer import OptimizerConfig

    path = Path(model_dir) / CONFIG_FILE
    bindings = read_bindings(path)
    fields = {name: value for (configurable, name), value in bindings.items() if configurable == "OptimizerConfig"}
    for name, value in [*fields.items(), ("num_steps", bindings.get(("TrainConfig", "num_steps"), 0))]:
        if isinstance(value, (_Macro, _Reference)):
            raise DataError(f"{path}: {name} is bound to {value.name}, which `lowres fit` cannot resolve; "
                            "bind it to a value")  # fmt: skip
    try:
        optimizer = OptimizerConfig(**fields)
    except TypeError as error:
        raise DataError(f"{path}: OptimizerConfig bindings do not fit this lowres ({error})") from error
    except ConfigError as error:
        raise DataError(f"{path}: {error}") from error
    num_steps = bindings.get(("TrainConfig", "num_steps"))
    if num_steps is None:  # the run used the default; importing the trainer is slow, so only here
        from lowres.training.trainer import TrainConfig

        num_steps = TrainConfig().num_steps
    if not isinstance(num_steps, int) or num_steps < 1:
        raise DataError(f"{path}: TrainConfig.num_steps = {num_steps!r} is not a positive number of steps")
    return RunSchedule(optimizer, num_steps)


def read_records(model_dir: str | Path) -> list[dict[str, Any]]:
    """The records of MODEL_DIR/metrics.jsonl."""
    if not Path(model_dir).is_dir():
        raise MissingFileError(f"{model_dir} is not a directory; give a run directory written by `lowres train`")
    return read_metrics(model_dir)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_learning_rates(records: list[dict[str, Any]], rates: np.ndarray, where: str) -> int:
    """Raises a DataError at the first logged learning rate (of update `step`) the rebuilt schedule
    does not reproduce; returns how many were checked."""
    checked = 0
    peak = float(np.max(rates)) if len(rates) else 0.0
    for record in records:
        step, logged = record.get("step"), record.get("learning_rate")
        if not (_is_number(logged) and isinstance(step, int)):
            continue
        if not 1 <= step <= len(rates):
            raise DataError(f"{where}: step {step} lies outside the {len(rates)} steps of the run's schedule "
                            f"(TrainConfig.num_steps in {CONFIG_FILE})")  # fmt: skip
        rebuilt = rates[step - 1]
        if not math.isclose(logged, rebuilt, rel_tol=1e-3, abs_tol=1e-6 * peak):
            raise DataError(f"{where}: the learning rate logged at step {step} ({logged:.6g}) is not the "
                            f"{rebuilt:.6g} of the schedule rebuilt from {CONFIG_FILE}; was the run resumed with "
                            "other optimiser settings or num_steps? Fit runs trained under one config")  # fmt: skip
        checked += 1
    return checked


def read_curve(model_dir: str | Path, metric: str = "loss") -> Curve:
    """The `metric` curve of a run with the learning rate of every update (checked against the log).
    Training `loss`/`nll` are the trainer's means over each logging interval and are fitted as such."""
    model_dir = Path(model_dir)
    records = read_records(model_dir)
    schedule = read_schedule(model_dir)
    rates = schedule.learning_rates()
    where = str(model_dir / METRICS_FILE)
    if not check_learning_rates(records, rates, where):
        raise DataError(f"{where} logs no learning_rate to check the schedule against; is it a `lowres train` log?")
    points = {r["step"]: float(r[metric]) for r in records
              if isinstance(r.get("step"), int) and 0 <= r["step"] <= schedule.num_steps
              and _is_number(r.get(metric))}  # fmt: skip
    if not points:
        found = sorted({k for r in records for k, v in r.items() if _is_number(v) and k != "step"})
        raise DataError(f"{where} has no value of metric {metric!r}; it logs {', '.join(found) or 'no metrics'}")
    steps = np.array(sorted(points))
    values = np.array([points[s] for s in steps])
    make = Curve.interval_means if metric in INTERVAL_MEANS else Curve.measured_at
    if metric in INTERVAL_MEANS and steps[0] == 0:
        raise DataError(f"{where}: {metric!r} logged at step 0, but training losses are means over logged intervals")
    return make(model_dir.name or str(model_dir), rates, steps, values, schedule.optimizer.warmup_steps)
