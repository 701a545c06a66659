"""T5.1.1-style encoder-decoder Transformer in Flax NNX, aware of packed sequences.

Inputs are the features of seqio's `EncDecFeatureConverter(pack=True)`: int32 [B, L] tokens, segment
ids (0 = padding) and positions that restart at 0 in each packed segment. Without segment ids, token
id 0 is padding and positions count from 0. Norm placement follows `config.norm` in each stack;
`init_cache` + `decode_step` decode autoregressively with cached keys and values.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
from flax import nnx

from lowres.models.config import EncoderDecoderConfig
from lowres.models.layers import (
    EMBED_NAMES,
    Embed,
    GatedMLP,
    KVCache,
    MultiHeadAttention,
    NormPlacement,
    RelativePositionBias,
    RMSNorm,
    cache_mask,
    causal_mask,
    default_positions,
    fan_in_init,
    make_param,
    output_logits,
    segment_mask,
)
from lowres.models.decoding_state import take_rows, unembed_position
from lowres.models.logical import constrain


@flax.struct.dataclass
class EncoderDecoderCache:
    """Decoding state: per decoder layer, self-attention K/V slots and the encoder's cross-attention K/V."""

    self_attention: tuple[KVCache, ...]
    cross_attention: tuple[KVCache, ...]
    encoder_mask: jax.Array  # bool [B, S_enc]: non-padding encoder positions


def _placements(config: EncoderDecoderConfig, num_layers: int) -> list[NormPlacement]:
    """Norm placement of each block of a stack (Mix-LN and LayerNorm Scaling count within the stack)."""
    return [NormPlacement.for_layer(config.norm, i, num_layers, config.mix_ln_alpha) for i in range(num_layers)]


class EncoderLayer(nnx.Module):
    """Block: bidirectional self-attention, then gated MLP, each a residual branch (norms named for Pre-LN)."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        self.pre_attention_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.attention = MultiHeadAttention(
            config.d_model, config.num_heads, config.head_dim, dropout_rate=config.dropout_rate,
            attention=config.attention, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.pre_mlp_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.mlp = GatedMLP(
            config.d_model, config.d_ff, activation=config.activation, dropout_rate=config.dropout_rate,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self, x: jax.Array, mask: jax.Array, bias: jax.Array, placement: NormPlacement, *, deterministic: bool
    ) -> jax.Array:
        h = placement.branch_input(x, self.pre_attention_norm)
        h = self.attention(h, h, mask, bias, deterministic=deterministic)
        x = placement.residual(x, self.dropout(h, deterministic=deterministic), self.pre_attention_norm)
        h = self.mlp(placement.branch_input(x, self.pre_mlp_norm), deterministic=deterministic)
        x = placement.residual(x, self.dropout(h, deterministic=deterministic), self.pre_mlp_norm)
        return constrain(x, EMBED_NAMES)


class DecoderLayer(nnx.Module):
    """Block: causal self-attention, cross-attention to the encoder, then gated MLP (norms named for Pre-LN)."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)

        def attention() -> MultiHeadAttention:
            return MultiHeadAttention(
                config.d_model, config.num_heads, config.head_dim, dropout_rate=config.dropout_rate,
                attention=config.attention, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
            )  # fmt: skip

        self.pre_self_attention_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.self_attention = attention()
        self.pre_cross_attention_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.cross_attention = attention()
        self.pre_mlp_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.mlp = GatedMLP(
            config.d_model, config.d_ff, activation=config.activation, dropout_rate=config.dropout_rate,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        cross_kv: KVCache,
        self_mask: jax.Array,
        cross_mask: jax.Array | None,
        bias: jax.Array,
        placement: NormPlacement,
        *,
        cache: KVCache | None = None,
        cache_index: jax.Array | None = None,
        deterministic: bool,
    ) -> tuple[jax.Array, KVCache | None]:
        """`cross_kv`: this layer's keys and values of the encoder output (see `Decoder.cross_keys_values`)."""
        h = placement.branch_input(x, self.pre_self_attention_norm)
        h, cache = self.self_attention.self_attend(
            h, self_mask, bias, cache=cache, cache_index=cache_index, deterministic=deterministic
        )
        x = placement.residual(x, self.dropout(h, deterministic=deterministic), self.pre_self_attention_norm)
        h = self.cross_attention.queries(placement.branch_input(x, self.pre_cross_attention_norm))
        h = self.cross_attention.attend(h, cross_kv.key, cross_kv.value, cross_mask, deterministic=deterministic)
        x = placement.residual(x, self.dropout(h, deterministic=deterministic), self.pre_cross_attention_norm)
        h = self.mlp(placement.branch_input(x, self.pre_mlp_norm), deterministic=deterministic)
        x = placement.residual(x, self.dropout(h, deterministic=deterministic), self.pre_mlp_norm)
        return constrain(x, EMBED_NAMES), cache


class Encoder(nnx.Module):
    """Encoder stack over embedded inputs; one bidirectional relative-bias table for all layers."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        self.relative_bias = RelativePositionBias(
            config.relative_attention_num_buckets, config.relative_attention_max_distance, config.num_heads,
            bidirectional=True, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.layers = nnx.List([EncoderLayer(config, rngs=rngs) for _ in range(config.num_encoder_layers)])
        self.final_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)
        self.config = config

    def __call__(
        self, x: jax.Array, segment_ids: jax.Array, positions: jax.Array, *, deterministic: bool
    ) -> jax.Array:
        mask = segment_mask(segment_ids, segment_ids)
        bias = self.relative_bias(positions, positions)
        x = self.dropout(x, deterministic=deterministic)
        for layer, placement in zip(self.layers, _placements(self.config, len(self.layers)), strict=True):
            x = layer(x, mask, bias, placement, deterministic=deterministic)
        return self.dropout(self.final_norm(x), deterministic=deterministic)


class Decoder(nnx.Module):
    """Decoder stack over embedded inputs; one causal relative-bias table for all layers."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        self.relative_bias = RelativePositionBias(
            config.relative_attention_num_buckets, config.relative_attention_max_distance, config.num_heads,
            bidirectional=False, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.layers = nnx.List([DecoderLayer(config, rngs=rngs) for _ in range(config.num_decoder_layers)])
        self.final_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)
        self.config = config

    def cross_keys_values(self, encoded: jax.Array) -> tuple[KVCache, ...]:
        """Each layer's cross-attention keys and values of the encoder output [B, S, E]."""
        return tuple(KVCache(*layer.cross_attention.keys_values(encoded)) for layer in self.layers)

    def __call__(
        self,
        x: jax.Array,
        cross_kv: tuple[KVCache, ...],
        self_mask: jax.Array,
        cross_mask: jax.Array | None,
        q_positions: jax.Array,
        k_positions: jax.Array,
        *,
        cache: tuple[KVCache, ...] | None = None,
        cache_index: jax.Array | None = None,
        deterministic: bool,
    ) -> tuple[jax.Array, tuple[KVCache, ...] | None]:
        """Embedded tokens [B, T, E] -> final features; with `cache`, T new tokens enter slots cache_index [B] on."""
        bias = self.relative_bias(q_positions, k_positions)
        x = self.dropout(x, deterministic=deterministic)
        caches = [None] * len(self.layers) if cache is None else list(cache)
        placements = _placements(self.config, len(self.layers))
        for i, (layer, placement) in enumerate(zip(self.layers, placements, strict=True)):
            x, caches[i] = layer(
                x, cross_kv[i], self_mask, cross_mask, bias, placement,
                cache=caches[i], cache_index=cache_index, deterministic=deterministic,
            )  # fmt: skip
        y = self.dropout(self.final_norm(x), deterministic=deterministic)
        return y, None if cache is None else tuple(caches)


class EncoderDecoder(nnx.Module):
    """T5.1.1 encoder-decoder: shared input embedding, untied (or tied) output logits, float32 logits."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.dtype = jnp.dtype(config.dtype)
        param_dtype = jnp.dtype(config.param_dtype)
        self.token_embed = Embed(config.vocab_size, config.d_model, dtype=self.dtype, param_dtype=param_dtype, rngs=rngs)
        self.encoder = Encoder(config, rngs=rngs)
        self.decoder = Decoder(config, rngs=rngs)
        self.logits_kernel = (
            None
            if config.tie_embeddings
            else make_param(
                fan_in_init(1.0), rngs.params(), (config.d_model, config.vocab_size), param_dtype, ("embed", "vocab")
            )
        )

    def encode(
        self,
        encoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """Tokens [B, S] -> encoded [B, S, d_model] in the compute dtype."""
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_input_tokens != 0).astype(jnp.int32)
        if encoder_positions is None:
            encoder_positions = default_positions(encoder_input_tokens)
        x = self.token_embed(encoder_input_tokens)
        return self.encoder(x, encoder_segment_ids, encoder_positions, deterministic=deterministic)

    def decode(
        self,
        encoded: jax.Array,
        encoder_segment_ids: jax.Array | None,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        *,
        deterministic: bool = True,
        return_features: bool = False,
    ) -> jax.Array:
        """Encoded [B, S, E] and decoder tokens [B, T] -> float32 logits [B, T, vocab] (or the final
        decoder features [B, T, E] with `return_features`, for a loss that unembeds in chunks).

        `encoder_segment_ids=None` attends to every encoder position. Without decoder segment ids the
        decoder is only causal: its first input is token 0 (BOS = padding id in T5), so token 0
        cannot mark decoder padding, and trailing padding is already invisible to real tokens.
        """
        length = decoder_input_tokens.shape[1]
        self_mask = causal_mask(length)
        if decoder_segment_ids is not None:
            self_mask = self_mask & segment_mask(decoder_segment_ids, decoder_segment_ids)
        if encoder_segment_ids is None:
            cross_mask = None
        elif decoder_segment_ids is None:
            cross_mask = (encoder_segment_ids != 0)[:, None, None, :]
        else:
            cross_mask = segment_mask(decoder_segment_ids, encoder_segment_ids)
        if decoder_positions is None:
            decoder_positions = default_positions(decoder_input_tokens)

        y = self.token_embed(decoder_input_tokens)
        cross_kv = self.decoder.cross_keys_values(encoded)
        y, _ = self.decoder(
            y, cross_kv, self_mask, cross_mask, decoder_positions, decoder_positions, deterministic=deterministic
        )
        return y if return_features else self.unembed(y)

    def unembed(self, features: jax.Array) -> jax.Array:
        """Final decoder features [..., d_model] -> float32 logits; separate so a loss can chunk it."""
        return output_logits(features, self.token_embed, self.logits_kernel, self.config.scale_tied_logits)

    def init_cache(
        self,
        encoder_input_tokens: jax.Array,
        max_length: int,
        encoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
    ) -> EncoderDecoderCache:
        """Encodes [B, S] once and returns the decoding state for up to `max_length` decoder steps."""
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_input_tokens != 0).astype(jnp.int32)
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions)
        config = self.config
        shape = (encoder_input_tokens.shape[0], config.num_heads, max_length, config.head_dim)
        return EncoderDecoderCache(
            self_attention=tuple(KVCache.zeros(shape, self.dtype) for _ in range(config.num_decoder_layers)),
            cross_attention=self.decoder.cross_keys_values(encoded),
            encoder_mask=encoder_segment_ids != 0,
        )

    def decode_step(
        self, token: jax.Array, cache: EncoderDecoderCache, position: jax.Array | int, return_features: bool = False
    ) -> tuple[jax.Array, EncoderDecoderCache]:
        """Next-token float32 logits [B, vocab] for decoder input tokens [B] at `position` (scalar or [B]).

        Matches `decode` without decoder segment ids: the relative bias sees the absolute step position.
        `return_features` also returns the final decoder features [B, d_model] (for contrastive search).
        """
        batch = token.shape[0]
        index = jnp.broadcast_to(jnp.asarray(position, jnp.int32), (batch,))
        q_positions = index[:, None]
        num_slots = cache.self_attention[0].key.shape[2]
        y = self.token_embed(token[:, None])
        y, self_attention = self.decoder(
            y,
            cache.cross_attention,
            cache_mask(q_positions, num_slots),
            cache.encoder_mask[:, None, None, :],
            q_positions,
            jnp.arange(num_slots, dtype=jnp.int32)[None],
            cache=cache.self_attention,
            cache_index=index,
            deterministic=True,
        )
        logits = self.unembed(y)[:, 0]
        if return_features:
            return logits, cache.replace(self_attention=self_attention), y[:, 0]
        return logits, cache.replace(self_attention=self_attention)

    def __call__(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """Teacher-forced forward pass -> float32 logits [B, T, vocab]."""
        return self.unembed(
            self.features(
                encoder_input_tokens,
                decoder_input_tokens,
                encoder_segment_ids,
                decoder_segment_ids,
                encoder_positions,
                decoder_positions,
                deterministic=deterministic,
            )
        )

    def features(
        self,
        encoder_input_tokens: jax.Array,
        decoder_input_tokens: jax.Array,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """Final decoder features [B, T, d_model] of the teacher-forced pass (logits = unembed of them)."""
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_input_tokens != 0).astype(jnp.int32)
        encoded = self.encode(
            encoder_input_tokens, encoder_segment_ids, encoder_positions, deterministic=deterministic
        )
        return self.decode(
            encoded,
            encoder_segment_ids,
            decoder_input_tokens,
            decoder_segment_ids,
            decoder_positions,
            deterministic=deterministic,
            return_features=True,
        )

    def decoding_start(self, inputs: jax.Array, lengths: jax.Array, max_length: int, use_cache: bool = True,
                       prefix_attention: bool = True):  # fmt: skip
        """How decoding starts from encoder inputs [B, S] (`lengths` and `prefix_attention` unused: the
        encoder always attends both ways): (first next-token logits [B, V],
        context features, context mask, state, (step, gather)), where step(token, state, i) -> (logits, features,
        state) feeds the i-th generated token and gather(state, rows) reorders rows. With `use_cache=False`
        every step recomputes the whole decoder prefix (the reference the cached path is tested against)."""
        batch = inputs.shape[0]
        bos = jnp.zeros((batch,), jnp.int32)
        if use_cache:
            cache = self.init_cache(inputs, max_length + 1)  # BOS plus max_length generated tokens

            def step(token, cache, i):
                logits, cache, features = self.decode_step(token, cache, i + 1, return_features=True)
                return logits, features, cache

            logits, features, cache = step(bos, cache, -1)
            return logits, features[:, None], jnp.ones((batch, 1), bool), cache, (step, take_rows(0))

        segment_ids = (inputs != 0).astype(jnp.int32)
        encoded = self.encode(inputs, segment_ids)

        def full_step(token, state, i):
            decoder_tokens, encoded, segment_ids = state
            decoder_tokens = jax.lax.dynamic_update_slice_in_dim(decoder_tokens, token[:, None], i + 1, axis=1)
            features = self.decode(encoded, segment_ids, decoder_tokens, return_features=True)
            features = jax.lax.dynamic_index_in_dim(features, i + 1, axis=1, keepdims=False)
            return unembed_position(self, features), features, (decoder_tokens, encoded, segment_ids)

        state = (jnp.zeros((batch, max_length + 1), jnp.int32), encoded, segment_ids)
        logits, features, state = full_step(bos, state, -1)
        return logits, features[:, None], jnp.ones((batch, 1), bool), state, (full_step, take_rows(0))
