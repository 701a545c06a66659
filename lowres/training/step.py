"""The train state and the pure optimiser step: gradients (with microbatch accumulation), the update
and the step's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lowres.models.losses import LossOptions, chunked_loss_sums, loss_sums, merge_model, model_inputs
from lowres.errors import ConfigError


@flax.struct.dataclass
class TrainState:
    """Everything a checkpoint holds: plain arrays only, so Orbax and optax see ordinary pytrees."""

    step: jax.Array
    params: Any
    opt_state: Any



def split_microbatches(batch: Mapping[str, jax.Array], microbatches: int) -> dict[str, jax.Array]:
    """[B, ...] -> [M, B/M, ...] with microbatch i = rows i, i+M, i+2M, ... (a strided split).

    A contiguous split would put each microbatch on a fraction of the data-parallel devices (and
    gather it there); the strided one keeps every microbatch spread over all of them, since each
    device's contiguous block of rows contributes B/(M*D) rows to every microbatch.
    """
    out = {}
    for key, value in batch.items():
        if value.shape[0] % microbatches:
            raise ConfigError(f"batch size {value.shape[0]} is not divisible by {microbatches} microbatches")
        rows = value.reshape(value.shape[0] // microbatches, microbatches, *value.shape[1:])
        out[key] = jnp.moveaxis(rows, 1, 0)
    return out


def leaf_names(tree) -> list[str]:
    """Readable paths of a pytree's leaves, in `jax.tree.leaves` order (for error messages)."""
    return [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    graphdef: nnx.GraphDef,
    rest: Any,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    z_loss: float = 1e-4,
    dropout_seed: int | None = None,
    loss_chunk_length: int = 0,
    loss_options: LossOptions | None = None,
    microbatches: int = 1,
    skip_nonfinite: bool = False,
    microbatch_sharding=None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser update on `batch`; returns the new state and scalar metrics.

    Dropout (when `dropout_seed` is set) draws from fold_in(seed, step), so a resumed run repeats
    the masks of an uninterrupted one without checkpointing RNG state. `loss_chunk_length` > 0
    computes the loss over sequence chunks (see `chunked_loss_sums`). With `microbatches` > 1 the
    gradient is accumulated over strided microbatches with `lax.scan` and normalised once, so it
    equals the full batch's. `skip_nonfinite` keeps the old parameters and optimiser state when the
    loss or any gradient is not finite; metrics always carry which gradient leaves were finite.
    """
    options = loss_options or LossOptions(z_loss=z_loss)
    deterministic = dropout_seed is None
    step_key = None if deterministic else jax.random.fold_in(jax.random.key(dropout_seed), state.step)

    def sums_fn(params, mb, key):
        model = merge_model(graphdef, params, rest, key)
        targets, weights = mb["decoder_target_tokens"], mb["decoder_loss_weights"]
        if loss_chunk_length:
            features = model.features(**model_inputs(mb), deterministic=deterministic)
            return chunked_loss_sums(features, model.unembed, targets, weights, options, loss_chunk_length)
        logits = model(**model_inputs(mb), deterministic=deterministic)
        return loss_sums(logits, targets, weights, options)

    grad_fn = jax.value_and_grad(sums_fn, has_aux=True)
    if microbatches <= 1:
        (numerator, aux), grads = grad_fn(state.params, batch, step_key)
    else:
        split = split_microbatches(batch, microbatches)
        if microbatch_sharding is not None:
            split = {k: jax.lax.with_sharding_constraint(v, microbatch_sharding(v.ndim)) for k, v in split.items()}

        def body(carry, xs):
            index, mb = xs
            key = None if step_key is None else jax.random.fold_in(step_key, index)
            (num, mb_aux), mb_grads = grad_fn(state.params, mb, key)
            acc_num, acc_aux, acc_grads = carry
            return (
                acc_num + num,
                jax.tree.map(jnp.add, acc_aux, mb_aux),
                jax.tree.map(lambda a, g: a + g.astype(a.dtype), acc_grads, mb_grads),
            ), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
        zero = jnp.zeros((), jnp.float32)
        init = (zero, {"nll_sum": zero, "num_tokens": zero, "denominator": zero}, zeros)
        (numerator, aux, grads), _ = jax.lax.scan(body, init, (jnp.arange(microbatches), split))
        grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, state.params)
    denominator = jnp.maximum(aux["denominator"], 1.0)
    loss = numerator / denominator
    grads = jax.tree.map(lambda g: g / denominator, grads)

    grad_finite = jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
    finite = jnp.isfinite(loss) & jnp.all(grad_finite)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if skip_nonfinite:
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        params = jax.tree.map(keep, params, state.params)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
    metrics = {
        "loss": loss,
        "nll": aux["nll_sum"] / jnp.maximum(aux["num_tokens"], 1.0),
        "num_tokens": aux["num_tokens"],
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
        "finite": finite,
        "grad_finite": grad_finite,
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics
