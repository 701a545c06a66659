"""Scaling laws and their fits (METHODS section 11): pure numpy/scipy, no files, no JAX.

    annealing  L(s) = L0 + A S1^-alpha - C S2         Tissue et al., "Scaling Law with Learning Rate Annealing"
    power      L(x) = E + A x^-alpha                  x: parameters N or data D
    joint      L(N, D) = E + A N^-alpha + B D^-beta   Chinchilla's form
    nmt        L(N_e, N_d) = a (N_e0/N_e)^p_e (N_d0/N_d)^p_d + L_inf   encoder and decoder sizes

Every law is linear in its coefficients (L0, A, C; E, A, B; a, L_inf) once its exponents are fixed, and
the coefficients are non-negative. A fit therefore starts from the best exponents on a grid, each with its
coefficients from non-negative least squares (no starting guess to get wrong), and then refines all
parameters together with scipy's `least_squares`. Residuals are relative, (predicted - measured) /
measured, so losses of any scale weigh alike; the annealing fit uses a Huber loss on them, so a few spiky
training-loss points do not pull the curve. Confidence intervals come from a seeded bootstrap over points.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import least_squares, nnls
from scipy.signal import lfilter

from lowres.errors import DataError

ANNEALING_MOMENTUM = 0.999  # lambda of the annealing area S2 (Tissue et al.; METHODS section 11)

FORMULAS = {
    "annealing": "L(s) = L0 + A * S1^-alpha - C * S2",
    "power": "L(x) = E + A * x^-alpha",
    "joint": "L(N, D) = E + A * N^-alpha + B * D^-beta",
    "nmt": "L(N_e, N_d) = a * (N_e0/N_e)^p_e * (N_d0/N_d)^p_d + L_inf",
}


@dataclasses.dataclass(frozen=True)
class Residuals:
    """How far a fit lies from the points it was fitted on (relative = residual / measured value)."""

    rmse: float
    mean_abs_rel: float
    max_abs_rel: float


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A fitted law: its parameters, the constants it was fitted with (lambda, reference sizes, ...),
    the residuals on the fitted points and, after `bootstrap`, percentile confidence intervals."""

    law: str
    params: dict[str, float]
    constants: dict[str, float]
    num_points: int
    residuals: Residuals
    intervals: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    confidence: float = 0.0  # of the intervals, e.g. 0.95
    resamples: int = 0  # bootstrap refits the intervals rest on
    draws: tuple[dict[str, float], ...] = dataclasses.field(default=(), repr=False)  # their parameters

    @property
    def formula(self) -> str:
        return FORMULAS[self.law]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["draws"]
        data["formula"] = self.formula
        data["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return data


# --- the fitting engine shared by every law ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Law:
    """A law as `design(exponents) @ coefficients`: columns of the design matrix per point, one per
    coefficient; each coefficient >= 0 (a sign, as in -C S2, lives in its column)."""

    coefficients: tuple[str, ...]
    exponents: tuple[str, ...]
    design: Callable[[np.ndarray], np.ndarray]  # exponents -> (points, coefficients)
    grid: tuple[np.ndarray, ...]  # starting values tried for each exponent
    exponent_bounds: tuple[float, float] = (1e-3, 3.0)


def _residuals(law: _Law, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    k = len(law.coefficients)
    return (law.design(p[k:]) @ p[:k] - y) / y


def _start(law: _Law, y: np.ndarray) -> np.ndarray:
    """The best grid point: exponents from the grid, coefficients by non-negative least squares."""
    best, best_cost = None, np.inf
    for exponents in itertools.product(*law.grid):
        exponents = np.asarray(exponents, dtype=float)
        weighted = law.design(exponents) / y[:, None]
        if not np.all(np.isfinite(weighted)):
            continue
        coefficients, cost = nnls(weighted, np.ones_like(y))
        if cost < best_cost:
            best, best_cost = np.concatenate([coefficients, exponents]), cost
    if best is None:
        raise DataError("no starting point gives finite predictions")
    return best


def _fit(law: _Law, y: np.ndarray, *, loss: str, f_scale: float, start: np.ndarray | None = None) -> np.ndarray:
    k, e = len(law.coefficients), len(law.exponents)
    low = np.array([0.0] * k + [law.exponent_bounds[0]] * e)
    high = np.array([np.inf] * k + [law.exponent_bounds[1]] * e)
    p0 = np.clip(_start(law, y) if start is None else start, low, high)
    p0[:k] = np.maximum(p0[:k], 1e-12)  # least_squares wants a strictly feasible start
    p0[k:] = np.clip(p0[k:], low[k:] + 1e-9, high[k:] - 1e-9)
    solution = least_squares(lambda p: _residuals(law, y, p), p0, bounds=(low, high), loss=loss, f_scale=f_scale,
                             x_scale="jac", method="trf", max_nfev=2000)  # fmt: skip
    return solution.x


def _residual_stats(predicted: np.ndarray, y: np.ndarray) -> Residuals:
    error = predicted - y
    return Residuals(rmse=float(np.sqrt(np.mean(error**2))), mean_abs_rel=float(np.mean(np.abs(error / y))),
                     max_abs_rel=float(np.max(np.abs(error / y))))  # fmt: skip


def _check_points(y: np.ndarray, needed: int, *xs: np.ndarray) -> None:
    if y.ndim != 1 or any(x.shape != y.shape for x in xs):
        raise ValueError(f"inputs must be 1-D arrays of one length, got shapes {[a.shape for a in (*xs, y)]}")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise DataError("the values to fit must be finite and positive")
    if any(np.any(~np.isfinite(x) | (x <= 0)) for x in xs):
        raise DataError("sizes must be finite and positive")
    if len(y) < needed:
        raise DataError(f"{len(y)} points cannot determine {needed - 1} parameters: give at least {needed}")


# --- power laws over sizes ----------------------------------------------------------------------------

_EXPONENT_GRID = np.linspace(0.05, 1.5, 30)


def _power_law(x: np.ndarray) -> _Law:
    return _Law(("E", "A"), ("alpha",), lambda p: np.stack([np.ones_like(x), x ** -p[0]], axis=1), (_EXPONENT_GRID,))


def _joint_law(n: np.ndarray, d: np.ndarray) -> _Law:
    grid = np.linspace(0.05, 1.5, 15)
    return _Law(("E", "A", "B"), ("alpha", "beta"),
                lambda p: np.stack([np.ones_like(n), n ** -p[0], d ** -p[1]], axis=1), (grid, grid))  # fmt: skip


def _nmt_law(ne: np.ndarray, nd: np.ndarray) -> _Law:
    grid = np.linspace(0.0, 1.5, 16)
    return _Law(("a", "L_inf"), ("p_e", "p_d"),
                lambda p: np.stack([ne ** -p[0] * nd ** -p[1], np.ones_like(ne)], axis=1), (grid, grid),
                exponent_bounds=(0.0, 3.0))  # fmt: skip


def _reference(x: np.ndarray) -> float:
    """A size to measure `x` in during the fit (its geometric mean), so that x^-alpha stays near 1."""
    return float(np.exp(np.mean(np.log(x))))


def fit_power_law(x: Sequence[float], y: Sequence[float], *, loss: str = "linear", f_scale: float = 0.01,
                  start: Mapping[str, float] | None = None, constants: Mapping[str, float] | None = None,
                  ) -> FitResult:  # fmt: skip
    """L(x) = E + A x^-alpha, with E, A >= 0; x is a model size N or a data size D.

    Every fit takes `start` (parameters to refine instead of the grid search) and `constants` (the law's
    fixed constants; this law has none), so that `bootstrap` can refit any of them alike."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    _check_points(y, 4, x)
    ref = _reference(x)
    law = _power_law(x / ref)
    p0 = None if start is None else np.array([start["E"], start["A"] * ref ** -start["alpha"], start["alpha"]])
    e, a, alpha = _fit(law, y, loss=loss, f_scale=f_scale, start=p0)
    params = {"E": float(e), "A": float(a * ref**alpha), "alpha": float(alpha)}
    return FitResult("power", params, {}, len(y), _residual_stats(predict("power", params, {}, x), y))


def fit_joint_law(n: Sequence[float], d: Sequence[float], y: Sequence[float], *, loss: str = "linear",
                  f_scale: float = 0.01, start: Mapping[str, float] | None = None,
                  constants: Mapping[str, float] | None = None) -> FitResult:  # fmt: skip
    """L(N, D) = E + A N^-alpha + B D^-beta (Hoffmann et al.), with E, A, B >= 0."""
    n, d, y = np.asarray(n, float), np.asarray(d, float), np.asarray(y, float)
    _check_points(y, 6, n, d)
    n_ref, d_ref = _reference(n), _reference(d)
    law = _joint_law(n / n_ref, d / d_ref)
    p0 = None
    if start is not None:
        p0 = np.array([start["E"], start["A"] * n_ref ** -start["alpha"], start["B"] * d_ref ** -start["beta"],
                       start["alpha"], start["beta"]])  # fmt: skip
    e, a, b, alpha, beta = _fit(law, y, loss=loss, f_scale=f_scale, start=p0)
    params = {"E": float(e), "A": float(a * n_ref**alpha), "alpha": float(alpha), "B": float(b * d_ref**beta),
              "beta": float(beta)}  # fmt: skip
    return FitResult("joint", params, {}, len(y), _residual_stats(predict("joint", params, {}, n, d), y))


def fit_nmt_law(ne: Sequence[float], nd: Sequence[float], y: Sequence[float], *, loss: str = "linear",
                f_scale: float = 0.01, start: Mapping[str, float] | None = None,
                constants: Mapping[str, float] | None = None) -> FitResult:  # fmt: skip
    """L(N_e, N_d) = a (N_e0/N_e)^p_e (N_d0/N_d)^p_d + L_inf (Ghorbani et al.'s encoder-decoder law).
    The reference sizes are fixed, not fitted: `constants` {"N_e0": ..., "N_d0": ...}, by default the
    smallest sizes in the data, so that a + L_inf is the loss of the smallest model; they are recorded
    in the result's constants (and kept by `bootstrap`, so that `a` means the same in every refit)."""
    ne, nd, y = np.asarray(ne, float), np.asarray(nd, float), np.asarray(y, float)
    _check_points(y, 5, ne, nd)
    ne0, nd0 = (constants["N_e0"], constants["N_d0"]) if constants else (float(ne.min()), float(nd.min()))
    law = _nmt_law(ne / ne0, nd / nd0)
    p0 = None if start is None else np.array([start[k] for k in ("a", "L_inf", "p_e", "p_d")])
    a, l_inf, p_e, p_d = _fit(law, y, loss=loss, f_scale=f_scale, start=p0)
    params = {"a": float(a), "p_e": float(p_e), "p_d": float(p_d), "L_inf": float(l_inf)}
    constants = {"N_e0": ne0, "N_d0": nd0}
    return FitResult("nmt", params, constants, len(y), _residual_stats(predict("nmt", params, constants, ne, nd), y))


def predict(law: str, params: Mapping[str, float], constants: Mapping[str, float], *sizes) -> np.ndarray:
    """The loss a fitted power, joint or nmt law predicts at the given sizes (one array per variable)."""
    xs = [np.asarray(s, float) for s in sizes]
    p = params
    if law == "power":
        return p["E"] + p["A"] * xs[0] ** -p["alpha"]
    if law == "joint":
        return p["E"] + p["A"] * xs[0] ** -p["alpha"] + p["B"] * xs[1] ** -p["beta"]
    if law == "nmt":
        return p["a"] * (constants["N_e0"] / xs[0]) ** p["p_e"] * (constants["N_d0"] / xs[1]) ** p["p_d"] + p["L_inf"]
    raise ValueError(f"unknown law {law!r}; choose power, joint or nmt")


def bootstrap(fit: Callable[..., FitResult], arrays: Sequence[Sequence[float]], result: FitResult, *,
              resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> FitResult:  # fmt: skip
    """`result` with percentile confidence intervals: the points (rows of `arrays`, the fit's arguments)
    are drawn with replacement `resamples` times and refitted by `fit(*drawn, start=result.params,
    constants=result.constants)`.
    Draws with fewer distinct points than parameters + 1 cannot determine the law and are drawn again."""
    columns = [np.asarray(a, float) for a in arrays]
    rows = np.stack(columns, axis=1)
    needed = len(result.params) + 1
    if len({tuple(r) for r in rows}) < needed:
        raise DataError(f"{len({tuple(r) for r in rows})} distinct points cannot be bootstrapped for "
                         f"{len(result.params)} parameters")  # fmt: skip
    rng = np.random.default_rng(seed)
    draws: list[dict[str, float]] = []
    for _ in range(100 * resamples):
        if len(draws) == resamples:
            break
        index = rng.integers(0, len(rows), len(rows))
        if len({tuple(r) for r in rows[index]}) < needed:
            continue
        draws.append(fit(*(c[index] for c in columns), start=result.params, constants=result.constants).params)
    tail = 100 * (1 - confidence) / 2
    intervals = {name: (float(np.percentile([d[name] for d in draws], tail)),
                        float(np.percentile([d[name] for d in draws], 100 - tail)))
                 for name in result.params}  # fmt: skip
    return dataclasses.replace(result, intervals=intervals, confidence=confidence, resamples=len(draws),
                               draws=tuple(draws))


# --- the learning-rate annealing law --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Curve:
    """A loss curve and the schedule that made it.

    learning_rates[t] is the learning rate of update t + 1 (every update of the run, not only logged
    ones). Point i of the curve is the mean of the law over "updates done" n in [start[i], stop[i]): a
    held-out loss measured after s updates has start = s, stop = s + 1; a training loss averaged by the
    trainer over the updates since the last log (each measured before its update) has start = the
    previous logged step, stop = s. `warmup_steps` updates of rising learning rate open the run.
    """

    name: str
    learning_rates: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    warmup_steps: int = 0

    def __post_init__(self):
        for field in ("learning_rates", "values"):
            object.__setattr__(self, field, np.asarray(getattr(self, field), float))
        for field in ("steps", "start", "stop"):
            object.__setattr__(self, field, np.asarray(getattr(self, field), int))
        if not (len(self.steps) == len(self.values) == len(self.start) == len(self.stop)):
            raise ValueError(f"curve {self.name}: steps, values, start and stop differ in length")
        if len(self.steps) and (self.start.min() < 0 or self.stop.max() > len(self.learning_rates) + 1
                                or np.any(self.stop <= self.start)):  # fmt: skip
            raise ValueError(f"curve {self.name}: spans outside the {len(self.learning_rates)} updates")

    @classmethod
    def measured_at(cls, name: str, learning_rates, steps, values, warmup_steps: int = 0) -> Curve:
        """A curve of values each measured after `steps` updates (held-out evaluations)."""
        steps = np.asarray(steps, int)
        return cls(name, learning_rates, steps, values, steps, steps + 1, warmup_steps)

    @classmethod
    def interval_means(cls, name: str, learning_rates, steps, values, warmup_steps: int = 0) -> Curve:
        """A curve of training losses, each the mean over the updates since the previous logged step."""
        steps = np.asarray(steps, int)
        return cls(name, learning_rates, steps, values, np.concatenate([[0], steps[:-1]]), steps, warmup_steps)

    def select(self, keep: np.ndarray) -> Curve:
        return dataclasses.replace(self, steps=self.steps[keep], values=self.values[keep], start=self.start[keep],
                                   stop=self.stop[keep])  # fmt: skip


def annealing_areas(learning_rates: Sequence[float], lam: float = ANNEALING_MOMENTUM,
                    warmup_steps: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(S1, S2) after n = 0 .. T updates (arrays of length T + 1) for the T learning rates of a run.

    S1(n) = eta_1 + ... + eta_n, the forward area. S2(n) = m_1 + ... + m_n with m_i = lam m_{i-1} +
    (eta_{i-1} - eta_i), the annealing area: a decrease of the learning rate keeps lowering the loss for
    ~1/(1 - lam) steps. The rise of the learning rate during warm-up is not annealing and is left out
    of S2 (counting it would add a large negative S2 that lingers ~1/(1 - lam) steps after warm-up);
    a later rise (re-warming) counts, negatively, as in the paper.
    """
    eta = np.asarray(learning_rates, float)
    if not 0.0 <= lam < 1.0:
        raise ValueError(f"lam={lam}: the annealing momentum lies in [0, 1)")
    s1 = np.concatenate([[0.0], np.cumsum(eta)])
    decrease = np.zeros_like(eta)
    decrease[1:] = eta[:-1] - eta[1:]  # eta_{i-1} - eta_i for update i = 2 .. T; update 1 has none
    decrease[: warmup_steps + 1] = 0.0  # updates 1 .. warmup + 1 end or follow the rising warm-up
    momentum = lfilter([1.0], [1.0, -lam], decrease)
    s2 = np.concatenate([[0.0], np.cumsum(momentum)])
    return s1, s2


def _span_means(per_step: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Mean of per_step[start:stop] for each span (per_step indexed by updates done); nan for a span
    holding a nan (a point inside the warm-up, where S1 = 0)."""
    missing = np.isnan(per_step)
    total = np.concatenate([[0.0], np.cumsum(np.where(missing, 0.0, per_step))])
    holes = np.concatenate([[0], np.cumsum(missing)])
    means = (total[stop] - total[start]) / (stop - start)
    return np.where(holes[stop] > holes[start], np.nan, means)


def _annealing_law(curves: Sequence[Curve], lam: float, with_annealing: bool) -> _Law:
    """Design columns [1, mean S1^-alpha, -mean S2] over the points of `curves` (means over each span)."""
    forward, annealing = [], []
    for curve in curves:
        s1, s2 = annealing_areas(curve.learning_rates, lam, curve.warmup_steps)
        forward.append((np.where(s1 > 0, s1, np.nan), curve.start, curve.stop))
        annealing.append(_span_means(s2, curve.start, curve.stop))
    s2_column = -np.concatenate(annealing)

    def design(p: np.ndarray) -> np.ndarray:
        power = np.concatenate([_span_means(s1**-p[0], start, stop) for s1, start, stop in forward])
        columns = [np.ones_like(power), power] + ([s2_column] if with_annealing else [])
        return np.stack(columns, axis=1)

    names = ("L0", "A", "C") if with_annealing else ("L0", "A")
    return _Law(names, ("alpha",), design, (np.linspace(0.05, 2.0, 40),))


def fitted_points(curves: Sequence[Curve], skip_steps: int | None = None) -> list[Curve]:
    """The points of each curve the annealing law can describe: those averaging only updates after the
    first `skip_steps` (default: each curve's warm-up) and after the learning-rate area became positive."""
    kept = []
    for curve in curves:
        skip = curve.warmup_steps if skip_steps is None else skip_steps
        positive = np.flatnonzero(np.cumsum(curve.learning_rates) > 0)  # S1(n) > 0 from n = positive[0] + 1
        first = int(positive[0]) + 1 if len(positive) else len(curve.learning_rates) + 1
        kept.append(curve.select((curve.start >= max(skip, first)) & np.isfinite(curve.values)))
    return kept


def fit_annealing_law(curves: Sequence[Curve], *, lam: float = ANNEALING_MOMENTUM, skip_steps: int | None = None,
                      with_annealing: bool = True, loss: str = "huber",
                      f_scale: float = 0.005) -> FitResult:  # fmt: skip
    """Fits L0, A, alpha, C of L(s) = L0 + A S1^-alpha - C S2 on one or more curves jointly.

    Points inside the first `skip_steps` updates (default: each curve's warm-up) are left out. The
    Huber loss switches from squares to absolute values for relative residuals above `f_scale`
    (0.5 %), so spikes of the training loss weigh little. `with_annealing=False` fits C = 0: the plain
    power law in the learning-rate area, the baseline the annealing term is judged against.
    """
    curves = [c for c in fitted_points(curves, skip_steps) if len(c.steps)]
    y = np.concatenate([c.values for c in curves]) if curves else np.array([])
    if len(y) < 5:
        raise DataError(f"{len(y)} points after the skipped steps cannot determine the annealing law; give at least 5")
    if np.any(y <= 0):
        raise DataError("losses must be positive")
    law = _annealing_law(curves, lam, with_annealing)
    p = _fit(law, y, loss=loss, f_scale=f_scale)
    params = dict(zip(law.coefficients + law.exponents, map(float, p)))
    params.setdefault("C", 0.0)
    params = {k: params[k] for k in ("L0", "A", "alpha", "C")}
    constants = {"lambda": lam, **({"skip_steps": skip_steps} if skip_steps is not None else {})}
    predicted = np.concatenate([predict_curve(params, c, lam) for c in curves])
    return FitResult("annealing", params, constants, len(y), _residual_stats(predicted, y))


def annealing_loss(params: Mapping[str, float], learning_rates: Sequence[float], lam: float = ANNEALING_MOMENTUM,
                   warmup_steps: int = 0) -> np.ndarray:  # fmt: skip
    """L after n = 0 .. T updates of a schedule (T learning rates) by the fitted law; nan where S1 = 0."""
    s1, s2 = annealing_areas(learning_rates, lam, warmup_steps)
    power = np.where(s1 > 0, s1, np.nan) ** -params["alpha"]
    return params["L0"] + params["A"] * power - params["C"] * s2


def predict_curve(params: Mapping[str, float], curve: Curve, lam: float = ANNEALING_MOMENTUM) -> np.ndarray:
    """The law's value at each point of `curve` (span means, as the points were measured)."""
    return _span_means(annealing_loss(params, curve.learning_rates, lam, curve.warmup_steps), curve.start, curve.stop)


def prediction_errors(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Mean absolute error, largest relative error, and the error at the last point (absolute, relative)."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    error = predicted - measured
    return {"mean_abs_error": float(np.mean(np.abs(error))), "max_rel_error": float(np.max(np.abs(error / measured))),
            "final_error": float(error[-1]), "final_rel_error": float(error[-1] / measured[-1]),
            "points": len(measured)}  # fmt: skip
