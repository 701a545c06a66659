"""Losses and scoring shared by training, inference and evaluation: token NLL, z-loss, label smoothing,
the normalisations, the chunked (memory-light) loss and per-example scoring of a batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from lowres.errors import ConfigError

MODEL_FEATURES = (
    "encoder_input_tokens",
    "decoder_input_tokens",
    "encoder_segment_ids",
    "decoder_segment_ids",
    "encoder_positions",
    "decoder_positions",
    "decoder_causal_attention",
)


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
            raise ConfigError(
                f"loss normalization {self.normalization!r} is unknown; use one of {', '.join(LOSS_NORMALIZATIONS)}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


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


def score_batch(params, batch: Mapping[str, jax.Array], *, graphdef: nnx.GraphDef, rest: Any) -> jax.Array:
    """Summed target NLL (nats) of each example in the batch: the basis of bits per byte."""
    model = merge_model(graphdef, params, rest)
    logits = model(**model_inputs(batch), deterministic=True)
    nll, _ = token_nll(logits, batch["decoder_target_tokens"])
    return (nll * batch["decoder_loss_weights"].astype(jnp.float32)).sum(axis=-1)
