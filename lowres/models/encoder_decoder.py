"""T5.1.1-style encoder-decoder Transformer in Flax NNX, aware of packed sequences.

Inputs are the features of seqio's `EncDecFeatureConverter(pack=True)`: int32 [B, L] tokens, segment
ids (0 = padding) and positions that restart at 0 in each packed segment. Without segment ids, token
id 0 is padding and positions count from 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lowres.models.config import EncoderDecoderConfig
from lowres.models.layers import (
    Embed,
    GatedMLP,
    MultiHeadAttention,
    RelativePositionBias,
    RMSNorm,
    fan_in_init,
    make_param,
)
from lowres.models.logical import constrain

EMBED_NAMES = ("batch", "length", "embed")


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


class EncoderLayer(nnx.Module):
    """Pre-norm block: bidirectional self-attention, then gated MLP, each with a residual."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        self.pre_attention_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.attention = MultiHeadAttention(
            config.d_model, config.num_heads, config.head_dim, dropout_rate=config.dropout_rate,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.pre_mlp_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.mlp = GatedMLP(
            config.d_model, config.d_ff, activation=config.activation, dropout_rate=config.dropout_rate,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array, bias: jax.Array, *, deterministic: bool) -> jax.Array:
        h = self.pre_attention_norm(x)
        x = x + self.dropout(self.attention(h, h, mask, bias, deterministic=deterministic), deterministic=deterministic)
        h = self.mlp(self.pre_mlp_norm(x), deterministic=deterministic)
        return constrain(x + self.dropout(h, deterministic=deterministic), EMBED_NAMES)


class DecoderLayer(nnx.Module):
    """Pre-norm block: causal self-attention, cross-attention to the encoder, then gated MLP."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)

        def attention() -> MultiHeadAttention:
            return MultiHeadAttention(
                config.d_model, config.num_heads, config.head_dim, dropout_rate=config.dropout_rate,
                dtype=dtype, param_dtype=param_dtype, rngs=rngs,
            )  # fmt: skip

        self.pre_self_attention_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.self_attention = attention()
        self.pre_cross_attention_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.cross_attention = attention()
        self.pre_mlp_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.mlp = GatedMLP(
            config.d_model, config.d_ff, activation=config.activation, dropout_rate=config.dropout_rate,
            dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        encoded: jax.Array,
        self_mask: jax.Array,
        cross_mask: jax.Array | None,
        bias: jax.Array,
        *,
        deterministic: bool,
    ) -> jax.Array:
        h = self.pre_self_attention_norm(x)
        h = self.self_attention(h, h, self_mask, bias, deterministic=deterministic)
        x = x + self.dropout(h, deterministic=deterministic)
        h = self.pre_cross_attention_norm(x)
        h = self.cross_attention(h, encoded, cross_mask, deterministic=deterministic)
        x = x + self.dropout(h, deterministic=deterministic)
        h = self.mlp(self.pre_mlp_norm(x), deterministic=deterministic)
        return constrain(x + self.dropout(h, deterministic=deterministic), EMBED_NAMES)


class Encoder(nnx.Module):
    """Encoder stack over embedded inputs; one bidirectional relative-bias table for all layers."""

    def __init__(self, config: EncoderDecoderConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        self.relative_bias = RelativePositionBias(
            config.relative_attention_num_buckets, config.relative_attention_max_distance, config.num_heads,
            bidirectional=True, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.layers = nnx.List([EncoderLayer(config, rngs=rngs) for _ in range(config.num_encoder_layers)])
        self.final_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self, x: jax.Array, segment_ids: jax.Array, positions: jax.Array, *, deterministic: bool
    ) -> jax.Array:
        mask = segment_mask(segment_ids, segment_ids)
        bias = self.relative_bias(positions, positions)
        x = self.dropout(x, deterministic=deterministic)
        for layer in self.layers:
            x = layer(x, mask, bias, deterministic=deterministic)
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
        self.final_norm = RMSNorm(config.d_model, dtype=dtype, param_dtype=param_dtype)
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        encoded: jax.Array,
        self_mask: jax.Array,
        cross_mask: jax.Array | None,
        positions: jax.Array,
        *,
        deterministic: bool,
    ) -> jax.Array:
        bias = self.relative_bias(positions, positions)
        x = self.dropout(x, deterministic=deterministic)
        for layer in self.layers:
            x = layer(x, encoded, self_mask, cross_mask, bias, deterministic=deterministic)
        return self.dropout(self.final_norm(x), deterministic=deterministic)


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
    ) -> jax.Array:
        """Encoded [B, S, E] and decoder tokens [B, T] -> float32 logits [B, T, vocab].

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
        y = self.decoder(y, encoded, self_mask, cross_mask, decoder_positions, deterministic=deterministic)
        if self.logits_kernel is None:
            # Tied: rescale so unit-RMS features against N(0, 1) embeddings give unit-scale logits.
            logits = self.token_embed.attend(y * jnp.asarray(self.config.d_model**-0.5, self.dtype))
        else:
            logits = jnp.einsum(
                "bte,ev->btv", y, self.logits_kernel[...].astype(self.dtype), preferred_element_type=jnp.float32
            )
        return constrain(logits, ("batch", "length", "vocab"))

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
        )
