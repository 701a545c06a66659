"""Schedules at their key steps, the weight-decay mask, each optimiser's update, loss options."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lowres.training.optimizer import OptimizerConfig, decay_mask, learning_rate_schedule, make_optimizer
from lowres.models.losses import LossOptions, loss_sums, token_losses


def lr(config, total, step):
    return float(learning_rate_schedule(config, total)(step))


def test_warmup_then_linear_cosine_constant_rsqrt():
    base = dict(learning_rate=1.0, warmup_steps=10, end_learning_rate_fraction=0.1)
    for name in ("linear", "cosine", "constant", "rsqrt", "wsd", "infinite"):
        config = OptimizerConfig(schedule=name, cooldown_steps=20, **base)
        assert lr(config, 110, 0) == 0.0 and lr(config, 110, 5) == pytest.approx(0.5), name
        assert lr(config, 110, 10) == pytest.approx(1.0), name
    linear, cosine = OptimizerConfig(schedule="linear", **base), OptimizerConfig(schedule="cosine", **base)
    assert lr(linear, 110, 60) == pytest.approx(0.55) and lr(linear, 110, 110) == pytest.approx(0.1)
    assert lr(cosine, 110, 60) == pytest.approx(0.55) and lr(cosine, 110, 110) == pytest.approx(0.1)
    assert lr(OptimizerConfig(schedule="constant", **base), 110, 100) == pytest.approx(1.0)
    rsqrt = OptimizerConfig(schedule="rsqrt", **base)
    assert lr(rsqrt, 110, 40) == pytest.approx(0.5) and lr(rsqrt, 110, 90) == pytest.approx(1 / 3)


def test_warmup_stable_decay():
    config = OptimizerConfig(schedule="wsd", learning_rate=2.0, warmup_steps=10, decay_fraction=0.2,
                             end_learning_rate_fraction=0.0)
    assert lr(config, 110, 50) == pytest.approx(2.0) and lr(config, 110, 88) == pytest.approx(2.0)
    assert lr(config, 110, 99) == pytest.approx(1.0) and lr(config, 110, 110) == pytest.approx(0.0, abs=1e-7)


def test_infinite_schedule_cools_down_holds_and_anneals_on_demand():
    kw = dict(schedule="infinite", learning_rate=1.0, warmup_steps=10, cooldown_steps=20, constant_fraction=0.5,
              end_learning_rate_fraction=0.05, anneal_steps=10)
    held = OptimizerConfig(**kw)
    assert lr(held, 100, 20) == pytest.approx(0.75) and lr(held, 100, 30) == pytest.approx(0.5)
    assert lr(held, 100, 10_000) == pytest.approx(0.5)  # constant for any number of steps
    annealed = OptimizerConfig(anneal_start_step=60, **kw)
    assert lr(annealed, 100, 59) == pytest.approx(0.5) and lr(annealed, 100, 60) == pytest.approx(0.5)
    assert lr(annealed, 100, 70) == pytest.approx(0.05) and lr(annealed, 100, 500) == pytest.approx(0.05)
    assert 0.05 < lr(annealed, 100, 65) < 0.5


def test_rewarming_restarts_the_schedule_at_the_given_step():
    config = OptimizerConfig(schedule="cosine", learning_rate=1.0, warmup_steps=10, end_learning_rate_fraction=0.1,
                             rewarm_from_step=100)
    assert lr(config, 210, 100) == 0.0 and lr(config, 210, 105) == pytest.approx(0.5)
    assert lr(config, 210, 110) == pytest.approx(1.0) and lr(config, 210, 210) == pytest.approx(0.1)


def test_rewarming_in_a_fresh_run_follows_a_first_cycle_that_ends_at_the_rewarm_step():
    # Steps before N are a complete schedule of N steps (what the pretraining run used), not zeros.
    config = OptimizerConfig(schedule="cosine", learning_rate=1.0, warmup_steps=10, end_learning_rate_fraction=0.1,
                             rewarm_from_step=100)
    first = OptimizerConfig(schedule="cosine", learning_rate=1.0, warmup_steps=10, end_learning_rate_fraction=0.1)
    for step in (0, 5, 10, 50, 99):
        assert lr(config, 210, step) == pytest.approx(lr(first, 100, step))
    assert lr(config, 210, 10) == pytest.approx(1.0) and lr(config, 210, 99) < 0.15
    for step in (100, 105, 150, 210):
        assert lr(config, 210, step) == pytest.approx(lr(first, 110, step - 100))
    with pytest.raises(ValueError, match="rewarm_from_step=100 must lie below.*num_steps=100"):
        learning_rate_schedule(config, 100)


def test_bad_names_fail_when_configured():
    with pytest.raises(ValueError, match="schedule='bogus'.*wsd"):
        OptimizerConfig(schedule="bogus")
    with pytest.raises(ValueError, match="name='sgd'"):
        OptimizerConfig(name="sgd")


def test_decay_mask_spares_norms_biases_and_vectors():
    params = {"enc": {"pre_mlp_norm": {"scale": jnp.ones((2, 4))}, "mlp": {"wi": jnp.ones((4, 8))},
                      "relative_bias": {"embedding": jnp.ones((32, 2))}, "vec": jnp.ones(4)}}
    mask = decay_mask(params)
    assert mask == {"enc": {"pre_mlp_norm": {"scale": False}, "mlp": {"wi": True},
                            "relative_bias": {"embedding": False}, "vec": False}}


@pytest.mark.parametrize("name", ["adamw", "adafactor", "lion"])
def test_each_optimizer_descends_and_decays_only_matrices(name):
    params = {"w": jnp.full((4, 4), 2.0), "norm": {"scale": jnp.full((4,), 2.0)}}
    config = OptimizerConfig(name=name, learning_rate=0.1, warmup_steps=0, schedule="constant", weight_decay=0.5,
                             adafactor_weight_decay=0.5)
    optimizer, _ = make_optimizer(config, 10)
    state = optimizer.init(params)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zero, state, params)
    # zero gradient: only weight decay moves anything, and only the matrix
    assert float(jnp.abs(updates["norm"]["scale"]).max()) == 0.0
    assert float(updates["w"].max()) < 0.0
    loss = lambda p: jnp.sum(jnp.square(p["w"] - 1.0)) + jnp.sum(jnp.square(p["norm"]["scale"] - 1.0))  # noqa: E731
    new = optax.apply_updates(params, optimizer.update(jax.grad(loss)(params), state, params)[0])
    assert float(loss(new)) < float(loss(params))


def test_adafactor_keeps_t5x_factored_second_moments():
    optimizer, _ = make_optimizer(OptimizerConfig(name="adafactor"), 10)
    state = optimizer.init({"w": jnp.ones((128, 256))})  # t5x factors dimensions of 128 and more
    shapes = [x.shape for x in jax.tree.leaves(state)]
    assert (128,) in shapes and (256,) in shapes and (128, 256) not in shapes  # row/column statistics


def test_clipping_bounds_the_global_norm():
    optimizer, _ = make_optimizer(OptimizerConfig(name="lion", clip_grad_norm=1.0, warmup_steps=0, learning_rate=1.0,
                                                  schedule="constant", weight_decay=0.0), 10)
    params = {"w": jnp.zeros(4)}
    state = optimizer.init(params)
    _, state = optimizer.update({"w": jnp.full((4,), 100.0)}, state, params)
    momentum = jax.tree.leaves(state[1])[1]  # Lion momentum after one step: (1 - b2) * clipped gradient
    np.testing.assert_allclose(np.asarray(momentum), np.full(4, 0.05 * 0.5), rtol=1e-5)


def test_label_smoothing_and_normalizations():
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 5)), jnp.float32)
    targets = jnp.asarray([[1, 2, 3], [4, 0, 0]])
    weights = jnp.asarray([[1, 1, 1], [1, 0, 0]])
    loss, nll = token_losses(logits, targets, 0.0, 0.1)
    log_probs = jax.nn.log_softmax(logits)
    q = 0.9 * jax.nn.one_hot(targets, 5) + 0.1 / 5
    np.testing.assert_allclose(loss, -(q * log_probs).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(nll, -jnp.take_along_axis(log_probs, targets[..., None], -1)[..., 0], rtol=1e-6)
    plain, _ = token_losses(logits, targets, 0.0)
    per_seq = (plain * weights).sum(-1)
    for normalization, expected in [("tokens", per_seq.sum() / 4), ("sequences", (per_seq[0] / 3 + per_seq[1]) / 2),
                                    ("constant", per_seq.sum() / 6)]:
        num, aux = loss_sums(logits, targets, weights, LossOptions(0.0, 0.0, normalization))
        assert float(num / aux["denominator"]) == pytest.approx(float(expected), rel=1e-6), normalization
    with pytest.raises(ValueError, match="normalization"):
        LossOptions(normalization="batch")
