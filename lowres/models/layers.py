"""Transformer building blocks shared by both architectures: norms and their placement, gated MLP,
attention (multi-head or grouped-query, with a KV cache), rotary and relative positions, embedding,
masks and per-layer rematerialisation.

No biases anywhere (T5.1.1). Every parameter is an `nnx.Param` carrying logical axis names in
`out_sharding`, so a rules table decides how it is laid out on a mesh.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx
from flax.core import spmd as flax_spmd

from lowres.models.config import ATTENTION_IMPLEMENTATIONS
from lowres.models.logical import constrain
from lowres.errors import ConfigError

# Finite stand-in for -inf: fully masked rows (padding queries) then softmax to a uniform, finite row.
MASK_VALUE = -1e10

EMBED_NAMES = ("batch", "length", "embed")
QUERY_NAMES = ("batch", "length", "heads", "kv")
# Keys and values are heads-major [B, K, S, D]: the layout attention's batched matmuls read, so a cache
# kept in it is read in place at every decode step (stored [B, S, K, D], XLA:CPU transposed every layer's
# cache, cross-attention's included, at every step).
KV_NAMES = ("batch", "kv_heads", "length", "kv")

Initializer = Callable[[jax.Array, Sequence[int], jnp.dtype], jax.Array]


def project(spec: str, x: jax.Array, kernel: jax.Array, **einsum_options) -> jax.Array:
    """A projection of every token: `spec` is the einsum over one token axis "t" (e.g. "te,ef->tf"),
    applied to x [B, T, ...] with its batch and length axes merged, then split again.

    Same values as the batched einsum ("bte,ef->btf"), but XLA:CPU compiles the batched form's
    gradients with transposes fused into elementwise work: on the maxtext-ref shape a gated MLP's
    forward + backward took 40 ms batched and 13 ms merged (the unembedding 377 ms and 207 ms).
    Merging the two leading (major) axes is a bitcast in XLA:CPU's optimised HLO (GPU and TPU not measured;
    TPU may copy when the length is not a multiple of its tiling); the sharded-equals-unsharded tests
    cover a batch sharding.
    """
    batch, length = x.shape[:2]
    y = jnp.einsum(spec, x.reshape(batch * length, *x.shape[2:]), kernel, **einsum_options)
    return y.reshape(batch, length, *y.shape[1:])


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


def segment_mask(q_segments: jax.Array, k_segments: jax.Array) -> jax.Array:
    """[B, Tq], [B, Tk] segment ids -> bool [B, 1, Tq, Tk]: same segment and key not padding."""
    same = q_segments[:, :, None] == k_segments[:, None, :]
    return (same & (k_segments[:, None, :] != 0))[:, None]


def causal_mask(length: int) -> jax.Array:
    """Bool [1, 1, T, T]: query t sees keys 0..t."""
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


def default_positions(tokens: jax.Array) -> jax.Array:
    """[1, L] positions 0..L-1, broadcast over the batch (unpacked inputs)."""
    return jnp.arange(tokens.shape[1], dtype=jnp.int32)[None]


def cache_mask(q_positions: jax.Array, num_slots: int) -> jax.Array:
    """Bool [B, 1, T, S]: a query at position p sees cache slots 0..p (slot = position when decoding)."""
    return jnp.arange(num_slots)[None, None, None, :] <= q_positions[:, None, :, None]


@dataclasses.dataclass(frozen=True)
class NormPlacement:
    """Where a block's norms sit: before each branch (times `scale` under LNS) or after the residual add (`post`).

    `post` may be a traced bool (Mix-LN inside a scan over layers): one branch evaluation then serves both.
    """

    post: bool | jax.Array = False
    scale: jax.Array | None = None

    @classmethod
    def for_layer(
        cls, norm: str, layer_index: int | jax.Array, num_layers: int, mix_ln_alpha: float
    ) -> NormPlacement:
        """Placement in block `layer_index` (from 0) of a stack of `num_layers` under config `norm`."""
        if norm == "post":
            return cls(post=True)
        if norm == "mix":
            return cls(post=layer_index < math.floor(mix_ln_alpha * num_layers))
        if norm == "lns":
            return cls(scale=jax.lax.rsqrt(jnp.asarray(layer_index + 1, jnp.float32)))
        return cls()

    def branch_input(self, x: jax.Array, norm: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """What the residual branch reads: the (scaled) norm of x under Pre-LN, x itself under Post-LN."""
        if self.post is True:
            return x
        h = norm(x)
        if self.scale is not None:
            h = h * self.scale.astype(h.dtype)
        return h if self.post is False else jnp.where(self.post, x, h)

    def residual(self, x: jax.Array, branch_out: jax.Array, norm: Callable[[jax.Array], jax.Array]) -> jax.Array:
        """The residual add, normalised afterwards under Post-LN."""
        y = x + branch_out
        if self.post is False:
            return y
        return norm(y) if self.post is True else jnp.where(self.post, norm(y), y)


def remat(fn: Callable, policy: str, *, prevent_cse: bool = True) -> Callable:
    """`fn` under jax.checkpoint with a policy named in config.REMAT_POLICIES ("none": `fn` itself)."""
    if policy == "none":
        return fn
    policies = {
        "full": None,
        "dots": jax.checkpoint_policies.checkpoint_dots,
        "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    }
    if policy not in policies:
        raise ConfigError(f"unknown remat policy {policy!r}; valid: {['none', *policies]}")
    return jax.checkpoint(fn, policy=policies[policy], prevent_cse=prevent_cse)


def rope_tables(positions: jax.Array, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
    """Sine and cosine [B|1, T, head_dim/2] (float32) of rotary angles at integer positions [B|1, T]."""
    inv_freq = theta ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: jax.Array, rope: tuple[jax.Array, jax.Array]) -> jax.Array:
    """Rotates feature pairs (i, i + D/2) of each head in [B, T, H, D] by the angles of `rope_tables`."""
    sin, cos = (t[:, :, None, :] for t in rope)
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


@flax.struct.dataclass
class KVCache:
    """Keys and values [B, K, S, D] of the slots decoded so far (a leading layers axis when stacked)."""

    key: jax.Array
    value: jax.Array

    @classmethod
    def zeros(cls, shape: Sequence[int], dtype) -> KVCache:
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))

    def write(self, key: jax.Array, value: jax.Array, index: jax.Array) -> KVCache:
        """Stores [B, K, T, D] keys and values at slots index[b] .. index[b] + T - 1 of each row b."""
        put = jax.vmap(lambda cache, new, i: jax.lax.dynamic_update_slice_in_dim(cache, new, i, axis=1))
        return KVCache(
            constrain(put(self.key, key.astype(self.key.dtype), index), KV_NAMES),
            constrain(put(self.value, value.astype(self.value.dtype), index), KV_NAMES),
        )


@flax.struct.dataclass
class CacheSlot:
    """Layer `layer`'s place in a stacked cache (keys and values [L, B, K, S, D]), used like a KVCache.

    Writing puts the new keys and values straight into the stacked arrays, so a decode loop that
    carries them updates a few slots in place, where slicing a layer out and stacking the layers back
    copied every layer's whole cache at every step.
    """

    stacked: KVCache
    layer: jax.Array | int

    @property
    def key(self) -> jax.Array:
        return self.stacked.key[self.layer]

    @property
    def value(self) -> jax.Array:
        return self.stacked.value[self.layer]

    def write(self, key: jax.Array, value: jax.Array, index: jax.Array) -> CacheSlot:
        """Stores [B, K, T, D] keys and values at slots index[b] .. index[b] + T - 1 of each row b."""
        rows = jnp.arange(key.shape[0])[:, None]
        slots = index[:, None] + jnp.arange(key.shape[2])[None]

        def put(cache: jax.Array, new: jax.Array) -> jax.Array:
            # cache[layer, rows, :, slots] is indexed [B, T, K, D] (advanced indices first)
            new = new.swapaxes(1, 2).astype(cache.dtype)
            return cache.at[self.layer, rows, :, slots].set(new, mode="promise_in_bounds")

        stacked = KVCache(put(self.stacked.key, key), put(self.stacked.value, value))
        return CacheSlot(stacked, self.layer)


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
        return project(
            "te,ve->tv", x, self.embedding[...].astype(self.dtype), preferred_element_type=jnp.float32
        )


def output_logits(y: jax.Array, embed: Embed, logits_kernel: nnx.Param | None, scale_tied: bool = True) -> jax.Array:
    """Float32 logits [B, T, vocab] of final features: a separate kernel, or the embedding when tied
    (rescaled by d_model**-0.5 when `scale_tied`: unit-RMS features against N(0, 1) embeddings then
    give unit-scale logits, as in T5)."""
    if logits_kernel is None:
        logits = embed.attend(y * jnp.asarray(y.shape[-1] ** -0.5, y.dtype) if scale_tied else y)
    else:
        logits = project(
            "te,ev->tv", y, logits_kernel[...].astype(y.dtype), preferred_element_type=jnp.float32
        )
    return constrain(logits, ("batch", "length", "vocab"))


class GatedMLP(nnx.Module):
    """Gated feed-forward block: wo(act(x wi_0) * (x wi_1)), as in T5.1.1."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        *,
        activation: str = "gelu",
        dropout_rate: float = 0.0,
        out_init_scale: float = 1.0,
        keyed_dropout: bool = False,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        """`out_init_scale` scales wo's init variance (depth-scaled residual init); with `keyed_dropout`
        dropout holds no RNG stream and takes `dropout_key` at call time (layers stacked for a scan)."""
        self.dtype = dtype
        self.activation = {"gelu": jax.nn.gelu, "silu": jax.nn.silu}[activation]
        self.wi_0 = make_param(fan_in_init(1.0), rngs.params(), (d_model, d_ff), param_dtype, ("embed", "mlp"))
        self.wi_1 = make_param(fan_in_init(1.0), rngs.params(), (d_model, d_ff), param_dtype, ("embed", "mlp"))
        self.wo = make_param(fan_in_init(out_init_scale), rngs.params(), (d_ff, d_model), param_dtype, ("mlp", "embed"))
        self.dropout = nnx.Dropout(dropout_rate, rngs=None if keyed_dropout else rngs)

    def __call__(self, x: jax.Array, *, deterministic: bool = True, dropout_key: jax.Array | None = None) -> jax.Array:
        gate = project("te,ef->tf", x, self.wi_0[...].astype(self.dtype))
        up = project("te,ef->tf", x, self.wi_1[...].astype(self.dtype))
        h = constrain(self.activation(gate) * up, ("batch", "length", "mlp"))
        h = self.dropout(h, deterministic=deterministic, rngs=dropout_key)
        out = project("tf,fe->te", h, self.wo[...].astype(self.dtype))
        return constrain(out, ("batch", "length", "embed"))


def _with_full_lengths(x: jax.Array, length: int, slots: int) -> jax.Array:
    """A mask or bias broadcastable to [B, H, T, S] as 4-d [B|1, H|1, T, S]: cuDNN takes no broadcasting
    over T and S (a cross-attention mask is [B, 1, 1, S])."""
    x = x.reshape((1,) * (4 - x.ndim) + x.shape)
    return jnp.broadcast_to(x, (*x.shape[:2], length, slots))


class MultiHeadAttention(nnx.Module):
    """Multi-head or grouped-query dot-product attention with optional additive bias and rotary
    embedding; logits and softmax in float32. Query head h reads K/V head h // (num_heads // num_kv_heads).

    `attention` (config.ATTENTION_IMPLEMENTATIONS) picks how `attend` computes it: "plain" einsums, or
    jax.nn.dot_product_attention ("dot_product": its default, XLA; "cudnn": cuDNN flash attention).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        *,
        num_kv_heads: int | None = None,
        fold_query_scale: bool = True,
        out_init_scale: float = 1.0,
        dropout_rate: float = 0.0,
        keyed_dropout: bool = False,
        attention: str = "plain",
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        """`fold_query_scale`: T5's 1/sqrt(head_dim) logit scaling lives in q's init (std
        (d_model*head_dim)^-1/2) rather than at runtime. `out_init_scale` and `keyed_dropout` as in GatedMLP."""
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads % num_kv_heads:
            raise ConfigError(f"num_kv_heads={num_kv_heads} must divide num_heads={num_heads}")
        if attention not in ATTENTION_IMPLEMENTATIONS:
            raise ConfigError(f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {attention!r}")
        self.implementation = attention
        self.dtype = dtype
        self.query_scale = None if fold_query_scale else head_dim**-0.5
        query_init = fan_in_init(1.0 / head_dim if fold_query_scale else 1.0, 0, (1, 2))
        kv_shape = (d_model, num_kv_heads, head_dim)
        kv_names = ("embed", "kv_heads", "kv")
        self.query = make_param(
            query_init, rngs.params(), (d_model, num_heads, head_dim), param_dtype, ("embed", "heads", "kv")
        )
        self.key = make_param(fan_in_init(1.0, 0, (1, 2)), rngs.params(), kv_shape, param_dtype, kv_names)
        self.value = make_param(fan_in_init(1.0, 0, (1, 2)), rngs.params(), kv_shape, param_dtype, kv_names)
        self.out = make_param(
            fan_in_init(out_init_scale, (0, 1), 2),
            rngs.params(),
            (num_heads, head_dim, d_model),
            param_dtype,
            ("heads", "kv", "embed"),
        )
        self.dropout = nnx.Dropout(dropout_rate, rngs=None if keyed_dropout else rngs)

    def queries(self, x: jax.Array, rope: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
        """[B, T, E] -> queries [B, T, H, D], rotated when `rope` (from `rope_tables`) is given."""
        q = project("te,ehd->thd", x, self.query[...].astype(self.dtype))
        if rope is not None:
            q = apply_rope(q, rope)
        if self.query_scale is not None:
            q = q * jnp.asarray(self.query_scale, self.dtype)
        return constrain(q, QUERY_NAMES)

    def keys_values(
        self, x: jax.Array, rope: tuple[jax.Array, jax.Array] | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """[B, S, E] -> keys and values [B, K, S, D] (heads-major), keys rotated when `rope` is given."""
        k = project("se,ekd->skd", x, self.key[...].astype(self.dtype))
        v = project("se,ekd->skd", x, self.value[...].astype(self.dtype))
        if rope is not None:
            k = apply_rope(k, rope)
        return constrain(k.swapaxes(1, 2), KV_NAMES), constrain(v.swapaxes(1, 2), KV_NAMES)

    def attend(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        mask: jax.Array | None = None,
        bias: jax.Array | None = None,
        *,
        deterministic: bool = True,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """q [B, T, H, D] (already scaled), k and v [B, K, S, D] -> [B, T, E]; mask bool and bias float
        broadcastable to [B, H, T, S]."""
        # jax.nn.dot_product_attention has no dropout on the attention weights: a training step with
        # dropout computes them here instead (same function, so switching paths changes no result).
        if self.implementation == "plain" or (self.dropout.rate > 0.0 and not deterministic):
            context = self._plain_context(q, k, v, mask, bias, deterministic=deterministic, dropout_key=dropout_key)
        else:
            context = self._fused_context(q, k, v, mask, bias)
        context = constrain(context, QUERY_NAMES)
        out = project("thd,hde->te", context, self.out[...].astype(self.dtype))
        return constrain(out, EMBED_NAMES)

    def _plain_context(
        self,
        q: jax.Array,
        k: jax.Array,
        v: jax.Array,
        mask: jax.Array | None,
        bias: jax.Array | None,
        *,
        deterministic: bool,
        dropout_key: jax.Array | None,
    ) -> jax.Array:
        """Attention by hand: float32 logits and softmax, dropout on the weights. -> [B, T, H, D]."""
        batch, length, num_heads, head_dim = q.shape
        num_kv_heads, slots = k.shape[1], k.shape[2]
        grouped = (batch, length, num_kv_heads, num_heads // num_kv_heads, head_dim)
        logits = jnp.einsum("btkgd,bksd->bkgts", q.reshape(grouped), k, preferred_element_type=jnp.float32)
        logits = logits.reshape(batch, num_heads, length, slots)
        if bias is not None:
            logits = logits + bias.astype(jnp.float32)
        if mask is not None:
            logits = jnp.where(mask, logits, MASK_VALUE)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = self.dropout(weights, deterministic=deterministic, rngs=dropout_key).astype(self.dtype)
        weights = weights.reshape(batch, num_kv_heads, num_heads // num_kv_heads, length, slots)
        context = jnp.einsum("bkgts,bksd->bkgtd", weights, v)  # a plain batched matmul (XLA:CPU's fast path)
        return context.transpose(0, 3, 1, 2, 4).reshape(q.shape)

    def _fused_context(
        self, q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None, bias: jax.Array | None
    ) -> jax.Array:
        """jax.nn.dot_product_attention -> [B, T, H, D]. It takes grouped K/V heads as they are (query head
        h reads K/V head h // G, as in `_plain_context`); its XLA path keeps logits and softmax in float32
        for 16-bit inputs, as the plain path does; scale 1: queries come scaled from `queries`."""
        cudnn = self.implementation == "cudnn"
        if cudnn and jax.default_backend() != "gpu":
            raise ConfigError(f'attention="cudnn" needs a GPU (the backend is {jax.default_backend()!r}); '
                              'use attention="dot_product", which runs everywhere')  # fmt: skip
        q, k, v = (t.astype(self.dtype) for t in (q, k, v))  # one dtype throughout (a cache may hold another)
        k, v = k.swapaxes(1, 2), v.swapaxes(1, 2)  # it takes [B, S, K, D]
        length, slots = q.shape[1], k.shape[1]
        if mask is not None:
            mask = _with_full_lengths(mask, length, slots)
        if bias is not None:
            # XLA adds the bias to float32 logits; cuDNN wants it in the inputs' dtype.
            bias = _with_full_lengths(bias.astype(self.dtype if cudnn else jnp.float32), length, slots)
        return jax.nn.dot_product_attention(
            q, k, v, bias=bias, mask=mask, scale=1.0, implementation="cudnn" if cudnn else None
        )

    def self_attend(
        self,
        x: jax.Array,
        mask: jax.Array | None,
        bias: jax.Array | None = None,
        *,
        rope: tuple[jax.Array, jax.Array] | None = None,
        cache: KVCache | None = None,
        cache_index: jax.Array | None = None,
        deterministic: bool = True,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """Self-attention of x [B, T, E]; with `cache`, its keys and values go to slots cache_index [B]
        onwards and queries attend over all slots (the mask then spans [.., T, S])."""
        q = self.queries(x, rope)
        k, v = self.keys_values(x, rope)
        if cache is not None:
            cache = cache.write(k, v, cache_index)
            k, v = cache.key, cache.value
        out = self.attend(q, k, v, mask, bias, deterministic=deterministic, dropout_key=dropout_key)
        return out, cache

    def __call__(
        self,
        inputs_q: jax.Array,
        inputs_kv: jax.Array,
        mask: jax.Array | None = None,
        bias: jax.Array | None = None,
        *,
        deterministic: bool = True,
        dropout_key: jax.Array | None = None,
    ) -> jax.Array:
        """inputs [B, Tq|Tk, E]; mask bool broadcastable to [B, H, Tq, Tk]; bias float broadcastable likewise."""
        k, v = self.keys_values(inputs_kv)
        return self.attend(
            self.queries(inputs_q), k, v, mask, bias, deterministic=deterministic, dropout_key=dropout_key
        )


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
