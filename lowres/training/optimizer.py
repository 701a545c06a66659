"""Optimisers (AdamW, Adafactor with t5x's defaults, Lion) and learning-rate schedules, from optax."""

from __future__ import annotations

import dataclasses

import gin
import jax
import optax

from lowres.config_fields import at_least, between, one_of, validated
from lowres.errors import ConfigError

SCHEDULES = ("constant", "linear", "cosine", "rsqrt", "wsd", "infinite")
OPTIMIZERS = ("adamw", "adafactor", "lion")


@gin.configurable
@validated(
    name=one_of(*OPTIMIZERS), learning_rate=at_least(0.0), warmup_steps=at_least(0), schedule=one_of(*SCHEDULES),
    end_learning_rate_fraction=between(0.0, 1.0), decay_fraction=between(0.0, 1.0), cooldown_steps=at_least(0),
    constant_fraction=between(0.0, 1.0), anneal_start_step=at_least(0), anneal_steps=at_least(1),
    rewarm_from_step=at_least(0), weight_decay=at_least(0.0), b1=between(0.0, 1.0, high_open=True),
    b2=between(0.0, 1.0, high_open=True), clip_grad_norm=at_least(0.0), adafactor_decay_rate=between(0.0, 1.0),
    adafactor_clipping_threshold=at_least(0.0), adafactor_weight_decay=at_least(0.0),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser and its learning-rate schedule.

    Every schedule warms up linearly from 0 to `learning_rate` over `warmup_steps`, then:
    constant; linear or cosine decay to `end_learning_rate_fraction` x peak at the last step;
    rsqrt: peak x sqrt(warmup / step) (t5x); wsd (warm-up-stable-decay): constant, then a linear
    decay over the last `decay_fraction` of the steps; infinite: a cosine cool-down over
    `cooldown_steps` to `constant_fraction` x peak, constant for any number of steps, and from
    `anneal_start_step` (0: never) an exponential anneal to `end_learning_rate_fraction` x peak
    over `anneal_steps`. `rewarm_from_step` > 0 restarts the whole schedule (warm-up included)
    at that step, after a first cycle that ends there: re-warming when a run continues on new data.
    """

    name: str = "adamw"
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    schedule: str = "cosine"
    end_learning_rate_fraction: float = 0.1
    decay_fraction: float = 0.1
    cooldown_steps: int = 0
    constant_fraction: float = 0.5
    anneal_start_step: int = 0
    anneal_steps: int = 100
    rewarm_from_step: int = 0
    weight_decay: float = 0.01
    b1: float = 0.9
    b2: float = 0.95
    clip_grad_norm: float = 1.0
    # Adafactor (t5x defaults).
    adafactor_decay_rate: float = 0.8
    adafactor_clipping_threshold: float = 1.0
    adafactor_factored: bool = True
    adafactor_parameter_scale: bool = True
    adafactor_weight_decay: float = 0.0  # t5x: none (`weight_decay` applies to AdamW and Lion)


def _decay_part(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The schedule after warm-up, as a function of steps since the end of warm-up."""
    peak, warmup = config.learning_rate, max(config.warmup_steps, 0)
    end = peak * config.end_learning_rate_fraction
    decay_steps = max(total_steps - warmup, 1)
    if config.schedule == "cosine":
        return optax.cosine_decay_schedule(peak, decay_steps, alpha=config.end_learning_rate_fraction)
    if config.schedule == "linear":
        return optax.linear_schedule(peak, end, decay_steps)
    if config.schedule == "rsqrt":
        offset = max(warmup, 1)
        return lambda step: peak * jax.lax.rsqrt((step + offset) / offset)
    if config.schedule == "constant":
        return optax.constant_schedule(peak)
    if config.schedule == "wsd":
        tail = max(int(round(total_steps * config.decay_fraction)), 1)
        stable = max(decay_steps - tail, 0)
        return optax.join_schedules(
            [optax.constant_schedule(peak), optax.linear_schedule(peak, end, tail)], [stable]
        )
    # infinite
    constant = peak * config.constant_fraction
    cooldown = max(config.cooldown_steps, 0)
    parts: list[optax.Schedule] = []
    boundaries: list[int] = []
    if cooldown:
        parts.append(optax.cosine_decay_schedule(peak, cooldown, alpha=config.constant_fraction))
        boundaries.append(cooldown)
    parts.append(optax.constant_schedule(constant))
    if config.anneal_start_step > 0:
        start = max(config.anneal_start_step - warmup, cooldown)
        boundaries.append(start)
        rate = config.end_learning_rate_fraction / config.constant_fraction
        parts.append(optax.exponential_decay(constant, max(config.anneal_steps, 1), rate, end_value=end))
    return optax.join_schedules(parts, boundaries) if boundaries else parts[0]


def _one_cycle(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to `learning_rate`, then the named schedule, over `total_steps` steps."""
    warmup = max(config.warmup_steps, 0)
    decay = _decay_part(config, total_steps)
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, config.learning_rate, warmup), decay], [warmup])


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to `learning_rate`, then the named schedule; see OptimizerConfig.

    With `rewarm_from_step` = N the run has two cycles: steps [0, N) follow the schedule of a run that
    ends at step N (what a pretraining run of N steps used), and from step N the schedule starts again,
    warm-up included, over the remaining `total_steps - N` steps (re-warming and re-decaying when a
    run continues on new data, METHODS section 6).
    """
    if config.rewarm_from_step <= 0:
        return _one_cycle(config, total_steps)
    boundary = config.rewarm_from_step
    if boundary >= total_steps:
        raise ConfigError(
            f"OptimizerConfig.rewarm_from_step={boundary} must lie below the run's last step "
            f"(TrainConfig.num_steps={total_steps}): it is where the second cycle of the schedule starts"
        )
    return optax.join_schedules([_one_cycle(config, boundary), _one_cycle(config, total_steps - boundary)],
                                [boundary])


NO_DECAY_NAMES = ("norm", "scale", "bias")


def decay_mask(params):
    """Weight decay on weight matrices only: not on norm scales, biases (relative position biases
    included) or any vector, judged by each parameter's path and rank."""

    def decays(path, p) -> bool:
        name = jax.tree_util.keystr(path, simple=True, separator="/").lower()
        return p.ndim > 1 and not any(word in name for word in NO_DECAY_NAMES)

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(config: OptimizerConfig, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optax chain (global-norm clipping, then the optimiser) and its schedule."""
    schedule = learning_rate_schedule(config, total_steps)
    if config.name == "adamw":
        core = optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay, mask=decay_mask)
    elif config.name == "lion":
        core = optax.lion(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay, mask=decay_mask)
    else:
        core = optax.adafactor(
            schedule,
            decay_rate=config.adafactor_decay_rate,
            clipping_threshold=config.adafactor_clipping_threshold,
            multiply_by_parameter_scale=config.adafactor_parameter_scale,
            factored=config.adafactor_factored,
            weight_decay_rate=config.adafactor_weight_decay or None,
            weight_decay_mask=decay_mask if config.adafactor_weight_decay else None,
        )
    chain = [core] if config.clip_grad_norm <= 0 else [optax.clip_by_global_norm(config.clip_grad_norm), core]
    return optax.chain(*chain), schedule


def schedule_values(config: OptimizerConfig, total_steps: int, every: int = 1) -> list[tuple[int, float]]:
    """(step, learning rate) over a run, for plots."""
    schedule = learning_rate_schedule(config, total_steps)
    return [(s, float(schedule(s))) for s in range(0, total_steps + 1, max(every, 1))]


__all__ = ["OptimizerConfig", "decay_mask", "learning_rate_schedule", "make_optimizer", "schedule_values"]
