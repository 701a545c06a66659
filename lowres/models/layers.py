"""Transformer building blocks: RMSNorm, gated MLP, multi-head attention, relative position bias, embedding.

No biases anywhere (T5.1.1). Every parameter is an `nnx.Param` carrying logical axis names in
`out_sharding`, so a rules table decides how it is laid out on a mesh.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import spmd as flax_spmd

from lowres.models.logical import constrain

# Finite stand-in for -inf: fully masked rows (padding queries) then softmax to a uniform, finite row.
MASK_VALUE = -1e10

Initializer = Callable[[jax.Array, Sequence[int], jnp.dtype], jax.Array]


def fan_in_init(scale: float, in_axis: int | Sequence[int] = -2, out_axis: int | Sequence[int] = -1) -> Initializer:
    """Truncated normal with variance scale / fan_in (fan_in over `in_axis`)."""
    return jax.nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal", in_axis=in_axis, out_axis=out_axis)


def make_param(
    init: Initializer, key: jax.Array | None, shape: Sequence[int], param_dtype: jnp.dtype, names: tuple[str, ...]
) -> nnx.Param:
    """Initialises a parameter annotated with logical axis names.

    Placement happens eagerly only inside a mesh + rules context (as `constrain` does), so the model
    also builds on a single device with no mesh at all.
    """
    if len(names) != len(shape):
        raise ValueError(f"{len(names)} axis names {names} for a parameter of shape {tuple(shape)}")
    eager = bool(flax_spmd.get_logical_axis_rules()) and not jax.sharding.get_abstract_mesh().empty
    return nnx.Param(init(key, shape, param_dtype), out_sharding=names, eager_sharding=eager)


class RMSNorm(nnx.Module):
    """Scale-only RMS layer norm (T5's LayerNorm), statistics in float32."""

    def __init__(self, dim: int, *, eps: float = 1e-6, dtype=jnp.float32, param_dtype=jnp.float32):
        self.eps = eps
        self.dtype = dtype
        self.scale = make_param(jax.nn.initializers.ones, None, (dim,), param_dtype, ("embed",))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return x32.astype(self.dtype) * self.scale[...].astype(self.dtype)


class Embed(nnx.Module):
    """Token embedding table [vocab, embed]; `attend` reuses it as a tied output projection."""

    def __init__(self, vocab_size: int, dim: int, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.dtype = dtype
        self.embedding = make_param(
            jax.nn.initializers.normal(1.0), rngs.params(), (vocab_size, dim), param_dtype, ("vocab", "embed")
        )

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = jnp.take(self.embedding[...], tokens, axis=0).astype(self.dtype)
        return constrain(x, ("batch", "length", "embed"))

    def attend(self, x: jax.Array) -> jax.Array:
        """Logits in float32 against the embedding table."""
        return jnp.einsum(
            "bte,ve->btv", x, self.embedding[...].astype(self.dtype), preferred_element_type=jnp.float32
        )


class GatedMLP(nnx.Module):
    """Gated feed-forward block: wo(act(x wi_0) * (x wi_1)), as in T5.1.1."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        activation: str = "gelu",
        dropout_rate: float = 0.0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.dtype = dtype
        self.activation = {"gelu": jax.nn.gelu, "silu": jax.nn.silu}[activation]
        self.wi_0 = make_param(fan_in_init(1.0), rngs.params(), (d_model, d_ff), param_dtype, ("embed", "mlp"))
        self.wi_1 = make_param(fan_in_init(1.0), rngs.params(), (d_model, d_ff), param_dtype, ("embed", "mlp"))
        self.wo = make_param(fan_in_init(1.0), rngs.params(), (d_ff, d_model), param_dtype, ("mlp", "embed"))
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array, *, deterministic: bool = True) -> jax.Array:
        gate = jnp.einsum("bte,ef->btf", x, self.wi_0[...].astype(self.dtype))
        up = jnp.einsum("bte,ef->btf", x, self.wi_1[...].astype(self.dtype))
        h = constrain(self.activation(gate) * up, ("batch", "length", "mlp"))
        h = self.dropout(h, deterministic=deterministic)
        out = jnp.einsum("btf,fe->bte", h, self.wo[...].astype(self.dtype))
        return constrain(out, ("batch", "length", "embed"))


class MultiHeadAttention(nnx.Module):
    """Multi-head dot-product attention with an optional additive bias; logits and softmax in float32."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        *,
        dropout_rate: float = 0.0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.dtype = dtype
        qkv_shape = (d_model, num_heads, head_dim)
        qkv_names = ("embed", "heads", "kv")
        # T5 folds the 1/sqrt(head_dim) logit scaling into q's init (std (d_model*head_dim)^-1/2), none at runtime.
        self.query = make_param(fan_in_init(1.0 / head_dim, 0, (1, 2)), rngs.params(), qkv_shape, param_dtype, qkv_names)
        self.key = make_param(fan_in_init(1.0, 0, (1, 2)), rngs.params(), qkv_shape, param_dtype, qkv_names)
        self.value = make_param(fan_in_init(1.0, 0, (1, 2)), rngs.params(), qkv_shape, param_dtype, qkv_names)
        self.out = make_param(
            fan_in_init(1.0, (0, 1), 2), rngs.params(), (num_heads, head_dim, d_model), param_dtype, ("heads", "kv", "embed")
        )
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_kv: jax.Array,
        mask: jax.Array | None = None,
        bias: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """inputs [B, Tq|Tk, E]; mask bool broadcastable to [B, H, Tq, Tk]; bias float broadcastable likewise."""
        head_names = ("batch", "length", "heads", "kv")
        q = constrain(jnp.einsum("bte,ehd->bthd", inputs_q, self.query[...].astype(self.dtype)), head_names)
        k = constrain(jnp.einsum("bse,ehd->bshd", inputs_kv, self.key[...].astype(self.dtype)), head_names)
        v = constrain(jnp.einsum("bse,ehd->bshd", inputs_kv, self.value[...].astype(self.dtype)), head_names)
        logits = jnp.einsum("bthd,bshd->bhts", q, k, preferred_element_type=jnp.float32)
        if bias is not None:
            logits = logits + bias.astype(jnp.float32)
        if mask is not None:
            logits = jnp.where(mask, logits, MASK_VALUE)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = self.dropout(weights, deterministic=deterministic).astype(self.dtype)
        context = constrain(jnp.einsum("bhts,bshd->bthd", weights, v), head_names)
        out = jnp.einsum("bthd,hde->bte", context, self.out[...].astype(self.dtype))
        return constrain(out, ("batch", "length", "embed"))


def relative_position_bucket(
    relative_position: jax.Array, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> jax.Array:
    """T5 bucketing of key-minus-query offsets: exact for small distances, log-spaced up to max_distance.

    Bidirectional buckets give keys after the query their own half of the table; unidirectional
    (causal) buckets clamp keys after the query to distance 0.
    """
    distance = -relative_position  # > 0 when the key precedes the query
    offset = jnp.zeros_like(distance)
    if bidirectional:
        num_buckets //= 2
        offset = jnp.where(distance < 0, num_buckets, 0)
        distance = jnp.abs(distance)
    else:
        distance = jnp.maximum(distance, 0)
    max_exact = num_buckets // 2
    log_ratio = jnp.log(jnp.maximum(distance, max_exact).astype(jnp.float32) / max_exact) / jnp.log(
        max_distance / max_exact
    )
    log_bucket = max_exact + (log_ratio * (num_buckets - max_exact)).astype(jnp.int32)
    log_bucket = jnp.minimum(log_bucket, num_buckets - 1)
    return offset + jnp.where(distance < max_exact, distance, log_bucket)


class RelativePositionBias(nnx.Module):
    """Learned per-head bias indexed by bucketed relative position; one table shared by a whole stack."""

    def __init__(
        self,
        num_buckets: int,
        max_distance: int,
        num_heads: int,
        *,
        bidirectional: bool,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.embedding = make_param(
            jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),
            rngs.params(),
            (num_buckets, num_heads),
            param_dtype,
            ("relpos_buckets", "heads"),
        )

    def __call__(self, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
        """Positions [B|1, Tq] and [B|1, Tk] -> float32 bias [B|1, H, Tq, Tk]."""
        relative = k_positions[:, None, :] - q_positions[:, :, None]
        buckets = relative_position_bucket(
            relative, bidirectional=self.bidirectional, num_buckets=self.num_buckets, max_distance=self.max_distance
        )
        bias = jnp.take(self.embedding[...].astype(jnp.float32), buckets, axis=0)  # [B, Tq, Tk, H]
        return jnp.transpose(bias, (0, 3, 1, 2))
