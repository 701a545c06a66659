"""Language mixing rates: temperature sampling, UniMax, fixed weights, per-task epoch caps (METHODS.md §5).

Rates are plain dicts (key -> probability summing to 1) so one set of functions serves languages,
language pairs and tasks; `register_mixture` turns them into a seqio mixture.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lowres.data.config import MixingConfig
from lowres.data.text.sources import SourceError
from lowres.errors import ConfigError, DataError

if TYPE_CHECKING:
    from lowres.data.text.corpora import CorpusSpec, CorpusStats

__all__ = [
    "MixingConfig",
    "cap_epochs",
    "expected_epochs",
    "fixed_rates",
    "language_rates",
    "mixing_rates",
    "register_mixture",
    "temperature_rates",
    "unimax_rates",
]


def _check_sizes(sizes: Mapping[str, float]) -> None:
    if not sizes:
        raise DataError("no languages to mix")
    bad = {key: size for key, size in sizes.items() if not size > 0}
    if bad:
        raise DataError(f"every size must be positive; got {bad} (an empty language cannot be sampled)")


def temperature_rates(sizes: Mapping[str, float], alpha: float = 0.3) -> dict[str, float]:
    """Sampling rates p(l) proportional to size_l ** alpha, normalised to sum to 1."""
    _check_sizes(sizes)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"temperature alpha must lie in [0, 1], got {alpha}")
    weights = {lang: float(size) ** alpha for lang, size in sizes.items()}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


def unimax_rates(sizes: Mapping[str, float], budget: float, max_epochs: float = 1.0) -> dict[str, float]:
    """UniMax: walk languages from smallest to largest, give each min(remaining / left, max_epochs * size).

    `budget` is the total training amount in the unit of `sizes` (characters, bytes or tokens); what
    a small language cannot use (its epoch cap) goes to the larger ones. Rates are the shares.
    """
    _check_sizes(sizes)
    if budget <= 0 or max_epochs <= 0:
        raise ConfigError(f"UniMax needs budget > 0 and max_epochs > 0, got {budget} and {max_epochs}")
    remaining = float(budget)
    allocation: dict[str, float] = {}
    order = sorted(sizes, key=lambda key: (sizes[key], key))
    for index, key in enumerate(order):
        share = min(remaining / (len(order) - index), max_epochs * float(sizes[key]))
        allocation[key] = share
        remaining -= share
    total = sum(allocation.values())
    return {key: allocation[key] / total for key in sizes}


def fixed_rates(weights: Mapping[str, float]) -> dict[str, float]:
    """User-given weights, normalised to sum to 1."""
    if not weights or any(w < 0 for w in weights.values()) or not sum(weights.values()) > 0:
        raise ConfigError(f"fixed weights must be non-negative with a positive sum, got {dict(weights)}")
    total = float(sum(weights.values()))
    return {key: float(w) / total for key, w in weights.items()}


def expected_epochs(rates: Mapping[str, float], sizes: Mapping[str, float], total: float) -> dict[str, float]:
    """Passes over each language's data when `total` units are drawn with `rates`: rate * total / size."""
    return {key: rates[key] * total / sizes[key] for key in rates}


def cap_epochs(
    rates: Mapping[str, float],
    sizes: Mapping[str, float],
    total: float,
    max_epochs: float | Mapping[str, float],
) -> dict[str, float]:
    """Rates lowered so no key exceeds its epoch cap over `total` units; the excess goes to the others.

    Uncapped keys share the freed mass in proportion to their rates. When every key is capped the
    budget cannot be met without repetition beyond the caps; the rates then follow the caps.
    """
    caps = {key: (max_epochs[key] if isinstance(max_epochs, Mapping) else max_epochs) for key in rates}
    if total <= 0 or any(cap is not None and cap <= 0 for cap in caps.values()):
        raise ConfigError(f"cap_epochs needs total > 0 and positive caps, got total={total}, caps={caps}")
    limit = {key: (None if caps[key] is None else caps[key] * sizes[key] / total) for key in rates}
    result = dict(rates)
    fixed: set[str] = set()
    while True:
        over = [k for k in result if k not in fixed and limit[k] is not None and result[k] > limit[k] * (1 + 1e-12)]
        if not over:
            break
        for key in over:
            result[key] = limit[key]
            fixed.add(key)
        free = [k for k in result if k not in fixed]
        mass = 1.0 - sum(result[k] for k in fixed)
        free_total = sum(rates[k] for k in free)
        if not free or mass <= 0 or free_total <= 0:
            logging.warning("every task reaches its epoch cap before %g units; rates follow the caps", total)
            capped = sum(result.values())
            return {key: result[key] / capped for key in result}
        for key in free:
            result[key] = mass * rates[key] / free_total
    return result


def mixing_rates(config: MixingConfig, sizes: Mapping[str, float]) -> dict[str, float]:
    """Rates per key (language) under `config`; fixed weights may name languages by any spelling."""
    if config.method == "temperature":
        rates = temperature_rates(sizes, config.alpha)
    elif config.method == "unimax":
        rates = unimax_rates(sizes, config.budget, config.max_epochs or 1.0)
    else:
        from lowres.data.languages import normalize_language

        weights = {k if k in sizes else normalize_language(k): float(v) for k, v in dict(config.weights).items()}
        missing = sorted(set(sizes) - set(weights))
        unknown = sorted(set(weights) - set(sizes))
        if unknown:
            raise ConfigError(f"fixed weights name {unknown}, which the corpus does not hold (it has {sorted(sizes)})")
        if missing:
            raise ConfigError(f"fixed weights give no weight to {missing}; give every language a weight (0 to skip)")
        rates = fixed_rates(weights)
    if config.max_epochs is not None and config.total is not None:
        rates = cap_epochs(rates, sizes, config.total, config.max_epochs)
    return rates


def language_rates(spec: CorpusSpec, stats: CorpusStats) -> dict[str, float]:
    """Mixing rate per language of a corpus under spec.mixing (sizes in bytes, chars, or tokens when counted)."""
    sizes = {"tokens": stats.tokens, "chars": stats.chars, "bytes": stats.bytes}[spec.mixing.size_unit]
    if sizes is None:
        raise ConfigError(f"corpus {spec.name!r} mixes by {spec.mixing.size_unit}, which this source does not "
                          "count" + (" without a vocabulary" if spec.mixing.size_unit == "tokens" else ""))
    empty = sorted(lang for lang, size in sizes.items() if size == 0)
    if empty:
        raise SourceError(f"corpus {spec.name!r}: no text left for {empty} (after cleaning, if on)")
    return mixing_rates(spec.mixing, sizes)


def register_mixture(name: str, tasks_and_rates: Sequence[tuple[str, float]]):
    """(Re-)registers a seqio mixture; tasks with rate 0 are left out."""
    import seqio

    kept = [(task, rate) for task, rate in tasks_and_rates if rate > 0]
    if not kept:
        raise ConfigError(f"mixture {name!r} has no task with a positive rate")
    seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, kept)
