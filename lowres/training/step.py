"""The train state and the pure functions a step is made of: loss, gradient update, scoring."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

MODEL_FEATURES = (
    "encoder_input_tokens",
    "decoder_input_tokens",
    "encoder_segment_ids",
    "decoder_segment_ids",
    "encoder_positions",
    "decoder_positions",
    "decoder_causal_attention",
)


@flax.struct.dataclass
class TrainState:
    """Everything a checkpoint holds: plain arrays only, so Orbax and optax see ordinary pytrees."""

    step: jax.Array
    params: Any
    opt_state: Any


def model_inputs(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    return {k: batch[k] for k in MODEL_FEATURES if k in batch}


def token_nll(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-token negative log-likelihood (nats) and log-partition, in float32."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return log_z - target_logit, log_z


def weighted_loss(logits, targets, weights, z_loss: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean over weighted target tokens of NLL + z_loss * log_z**2 (z-loss keeps logits from drifting)."""
    nll, log_z = token_nll(logits, targets)
    weights = weights.astype(jnp.float32)
    num_tokens = jnp.maximum(weights.sum(), 1.0)
    total = ((nll + z_loss * jnp.square(log_z)) * weights).sum()
    nll_sum = (nll * weights).sum()
    return total / num_tokens, {"nll_sum": nll_sum, "num_tokens": weights.sum()}


def merge_model(graphdef: nnx.GraphDef, params, rest, dropout_key: jax.Array | None = None) -> nnx.Module:
    """The model from its parts; with `dropout_key`, dropout streams are reseeded from it."""
    # copy: merging inside a traced grad must not share the caller's RNG variables across traces.
    model = nnx.merge(graphdef, params, rest, copy=True)
    if dropout_key is not None:
        nnx.reseed(model, default=dropout_key)
    return model


def chunked_weighted_loss(
    features: jax.Array, unembed, targets, weights, z_loss: float, chunk_length: int
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`weighted_loss` without materialising [B, T, vocab] logits: the sequence is scanned in chunks
    whose logits are recomputed in the backward pass (jax.checkpoint), so peak memory holds one
    chunk's logits, which is what keeps 250k-entry vocabularies trainable."""
    batch, length, width = features.shape
    pad = (-length) % chunk_length
    if pad:
        features = jnp.pad(features, [(0, 0), (0, pad), (0, 0)])
        targets, weights = (jnp.pad(a, [(0, 0), (0, pad)]) for a in (targets, weights))
    chunks = (length + pad) // chunk_length

    def split(a):
        return a.reshape(batch, chunks, chunk_length, *a.shape[2:]).swapaxes(0, 1)

    @jax.checkpoint
    def chunk_sums(feature_chunk, target_chunk, weight_chunk):
        nll, log_z = token_nll(unembed(feature_chunk), target_chunk)
        w = weight_chunk.astype(jnp.float32)
        return ((nll + z_loss * jnp.square(log_z)) * w).sum(), (nll * w).sum()

    def body(carry, xs):
        total, nll = chunk_sums(*xs)
        return (carry[0] + total, carry[1] + nll), None

    zero = jnp.zeros((), jnp.float32)
    (total, nll_sum), _ = jax.lax.scan(body, (zero, zero), (split(features), split(targets), split(weights)))
    num_tokens = weights.astype(jnp.float32).sum()
    return total / jnp.maximum(num_tokens, 1.0), {"nll_sum": nll_sum, "num_tokens": num_tokens}


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    graphdef: nnx.GraphDef,
    rest: Any,
    optimizer: optax.GradientTransformation,
    schedule: optax.Schedule,
    z_loss: float,
    dropout_seed: int | None = None,
    loss_chunk_length: int = 0,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser update on `batch`; returns the new state and scalar metrics.

    Dropout (when `dropout_seed` is set) draws from fold_in(seed, step), so a resumed run repeats
    the masks of an uninterrupted one without checkpointing RNG state. `loss_chunk_length` > 0
    computes the loss over sequence chunks (see `chunked_weighted_loss`).
    """
    deterministic = dropout_seed is None
    dropout_key = None if deterministic else jax.random.fold_in(jax.random.key(dropout_seed), state.step)

    targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]

    def loss_fn(params):
        model = merge_model(graphdef, params, rest, dropout_key)
        if loss_chunk_length:
            features = model.features(**model_inputs(batch), deterministic=deterministic)
            return chunked_weighted_loss(features, model.unembed, targets, weights, z_loss, loss_chunk_length)
        logits = model(**model_inputs(batch), deterministic=deterministic)
        return weighted_loss(logits, targets, weights, z_loss)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        "loss": loss,
        "nll": aux["nll_sum"] / jnp.maximum(aux["num_tokens"], 1.0),
        "num_tokens": aux["num_tokens"],
        "grad_norm": optax.tree.norm(grads),
        "learning_rate": schedule(state.step),
    }
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics


def score_batch(params, batch: Mapping[str, jax.Array], *, graphdef: nnx.GraphDef, rest: Any) -> jax.Array:
    """Summed target NLL (nats) of each example in the batch: the basis of bits per byte."""
    model = merge_model(graphdef, params, rest)
    logits = model(**model_inputs(batch), deterministic=True)
    nll, _ = token_nll(logits, batch["decoder_target_tokens"])
    return (nll * batch["decoder_loss_weights"].astype(jnp.float32)).sum(axis=-1)
