"""Optimisers and learning-rate schedules, built from optax."""

from __future__ import annotations

import dataclasses

import gin
import jax
import optax


@gin.configurable
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """`name` in {adamw, adafactor}; `schedule` in {cosine, linear, rsqrt, constant}, all with warm-up."""

    name: str = "adamw"
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    schedule: str = "cosine"
    end_learning_rate_fraction: float = 0.1
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.95
    clip_grad_norm: float = 1.0


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to `learning_rate`, then the named decay over the remaining steps."""
    peak, warmup = config.learning_rate, max(config.warmup_steps, 0)
    end = peak * config.end_learning_rate_fraction
    decay_steps = max(total_steps - warmup, 1)
    if config.schedule == "cosine":
        decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=config.end_learning_rate_fraction)
    elif config.schedule == "linear":
        decay = optax.linear_schedule(peak, end, decay_steps)
    elif config.schedule == "rsqrt":
        offset = max(warmup, 1)
        decay = lambda step: peak * jax.lax.rsqrt((step + offset) / offset)  # noqa: E731
    elif config.schedule == "constant":
        decay = optax.constant_schedule(peak)
    else:
        raise ValueError(
            f"OptimizerConfig.schedule={config.schedule!r} is unknown; use cosine, linear, rsqrt or constant"
        )
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def _decay_mask(params):
    """Weight decay on matrices only: no decay on norm scales (or any vector)."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(config: OptimizerConfig, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(config, total_steps)
    if config.name == "adamw":
        core = optax.adamw(
            schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay, mask=_decay_mask
        )
    elif config.name == "adafactor":
        core = optax.adafactor(schedule, decay_rate=0.8, clipping_threshold=1.0, multiply_by_parameter_scale=True)
    else:
        raise ValueError(f"OptimizerConfig.name={config.name!r} is unknown; use adamw or adafactor")
    chain = [core] if config.clip_grad_norm <= 0 else [optax.clip_by_global_norm(config.clip_grad_norm), core]
    return optax.chain(*chain), schedule
