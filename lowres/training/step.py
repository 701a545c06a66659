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


LOSS_NORMALIZATIONS = ("tokens", "sequences", "constant")


@flax.struct.dataclass
class LossOptions:
    """How the loss is formed: z-loss weight, label smoothing and what the summed loss is divided by.

    normalization: "tokens" (mean over weighted target tokens of the whole batch), "sequences"
    (each sequence's token mean, averaged over sequences) or "constant" (divided by batch size x
    target length, t5x's `loss_normalizing_factor`, which weights every token the same across steps).
    """

    z_loss: float = flax.struct.field(pytree_node=False, default=1e-4)
    label_smoothing: float = flax.struct.field(pytree_node=False, default=0.0)
    normalization: str = flax.struct.field(pytree_node=False, default="tokens")

    def __post_init__(self):
        if self.normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(
                f"loss normalization {self.normalization!r} is unknown; use one of {', '.join(LOSS_NORMALIZATIONS)}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def token_nll(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-token negative log-likelihood (nats) and log-partition, in float32."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return log_z - target_logit, log_z


def token_losses(logits, targets, z_loss: float, label_smoothing: float = 0.0) -> tuple[jax.Array, jax.Array]:
    """Per-token training loss (cross-entropy against label-smoothed targets + z-loss) and plain NLL."""
    nll, log_z = token_nll(logits, targets)
    loss = nll
    if label_smoothing:
        # Cross-entropy with q = (1 - a) one-hot + a / V: log Z - (1 - a) logit_t - a mean(logits).
        smooth = log_z - jnp.mean(logits.astype(jnp.float32), axis=-1)
        loss = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    return loss + z_loss * jnp.square(log_z), nll


def _normalized_sums(per_seq_loss, per_seq_nll, per_seq_tokens, length: int, normalization: str):
    """(numerator, aux) such that the loss is numerator / aux["denominator"], summable over microbatches."""
    num_tokens = per_seq_tokens.sum()
    if normalization == "tokens":
        numerator, denominator = per_seq_loss.sum(), num_tokens
    elif normalization == "sequences":
        numerator = (per_seq_loss / jnp.maximum(per_seq_tokens, 1.0)).sum()
        denominator = (per_seq_tokens > 0).sum().astype(jnp.float32)
    else:
        numerator = per_seq_loss.sum()
        denominator = jnp.asarray(per_seq_loss.shape[0] * length, jnp.float32)
    return numerator, {"nll_sum": per_seq_nll.sum(), "num_tokens": num_tokens, "denominator": denominator}


def loss_sums(logits, targets, weights, options: LossOptions):
    """Unnormalised loss of a (micro)batch and the sums needed to normalise it (see LossOptions)."""
    loss, nll = token_losses(logits, targets, options.z_loss, options.label_smoothing)
    w = weights.astype(jnp.float32)
    return _normalized_sums(
        (loss * w).sum(-1), (nll * w).sum(-1), w.sum(-1), targets.shape[-1], options.normalization
    )


def weighted_loss(logits, targets, weights, z_loss: float) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean over weighted target tokens of NLL + z_loss * log_z**2 (z-loss keeps logits from drifting)."""
    numerator, aux = loss_sums(logits, targets, weights, LossOptions(z_loss=z_loss))
    return numerator / jnp.maximum(aux["denominator"], 1.0), aux


def merge_model(graphdef: nnx.GraphDef, params, rest, dropout_key: jax.Array | None = None) -> nnx.Module:
    """The model from its parts; with `dropout_key`, dropout streams are reseeded from it."""
    # copy: merging inside a traced grad must not share the caller's RNG variables across traces.
    model = nnx.merge(graphdef, params, rest, copy=True)
    if dropout_key is not None:
        nnx.reseed(model, default=dropout_key)
    return model


def chunked_loss_sums(features: jax.Array, unembed, targets, weights, options: LossOptions, chunk_length: int):
    """`loss_sums` without materialising [B, T, vocab] logits: the sequence is scanned in chunks
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
        loss, nll = token_losses(unembed(feature_chunk), target_chunk, options.z_loss, options.label_smoothing)
        w = weight_chunk.astype(jnp.float32)
        return (loss * w).sum(-1), (nll * w).sum(-1)

    def body(carry, xs):
        total, nll = chunk_sums(*xs)
        return (carry[0] + total, carry[1] + nll), None

    zero = jnp.zeros((batch,), jnp.float32)
    (total, nll_sum), _ = jax.lax.scan(body, (zero, zero), (split(features), split(targets), split(weights)))
    return _normalized_sums(total, nll_sum, weights.astype(jnp.float32).sum(-1), length, options.normalization)


def chunked_weighted_loss(
    features: jax.Array, unembed, targets, weights, z_loss: float, chunk_length: int
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """`weighted_loss` computed in sequence chunks (see `chunked_loss_sums`)."""
    numerator, aux = chunked_loss_sums(features, unembed, targets, weights, LossOptions(z_loss=z_loss), chunk_length)
    return numerator / jnp.maximum(aux["denominator"], 1.0), aux


def split_microbatches(batch: Mapping[str, jax.Array], microbatches: int) -> dict[str, jax.Array]:
    """[B, ...] -> [M, B/M, ...] with microbatch i = rows i, i+M, i+2M, ... (a strided split).

    A contiguous split would put each microbatch on a fraction of the data-parallel devices (and
    gather it there); the strided one keeps every microbatch spread over all of them, since each
    device's contiguous block of rows contributes B/(M*D) rows to every microbatch.
    """
    out = {}
    for key, value in batch.items():
        if value.shape[0] % microbatches:
            raise ValueError(f"batch size {value.shape[0]} is not divisible by {microbatches} microbatches")
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


def score_batch(params, batch: Mapping[str, jax.Array], *, graphdef: nnx.GraphDef, rest: Any) -> jax.Array:
    """Summed target NLL (nats) of each example in the batch: the basis of bits per byte."""
    model = merge_model(graphdef, params, rest)
    logits = model(**model_inputs(batch), deterministic=True)
    nll, _ = token_nll(logits, batch["decoder_target_tokens"])
    return (nll * batch["decoder_loss_weights"].astype(jnp.float32)).sum(axis=-1)
