"""Llama-style decoder-only Transformer in Flax NNX: RoPE, RMSNorm, gated MLP, grouped-query attention.

Inputs are the features of seqio's `DecoderFeatureConverter` / `PrefixLMFeatureConverter`: int32
[B, T] tokens, segment ids (0 = padding) and positions restarting at 0 in each packed segment, and
`decoder_causal_attention`, 1 on each example's prefix, which then attends bidirectionally within
itself (prefix LM). Layers are stacked under `lax.scan` when `config.scan_layers`; `init_cache`,
`prefill` and `decode_step` decode autoregressively with cached keys and values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lowres.models.config import DecoderOnlyConfig
from lowres.models.layers import (
    EMBED_NAMES,
    CacheSlot,
    Embed,
    GatedMLP,
    KVCache,
    MultiHeadAttention,
    NormPlacement,
    RMSNorm,
    cache_mask,
    causal_mask,
    default_positions,
    fan_in_init,
    make_param,
    output_logits,
    remat,
    rope_tables,
    segment_mask,
)
from lowres.models.decoding_state import at_positions, take_rows, unembed_position
from lowres.models.logical import constrain

Rope = tuple[jax.Array, jax.Array]


def decoder_mask(
    length: int, segment_ids: jax.Array | None = None, causal_attention: jax.Array | None = None
) -> jax.Array:
    """Bool [B|1, 1, T, T]: causal, plus prefix-to-prefix where causal_attention is 1, within a segment."""
    mask = causal_mask(length)
    if causal_attention is not None:
        prefix = causal_attention.astype(bool)
        mask = mask | (prefix[:, None, :, None] & prefix[:, None, None, :])
    if segment_ids is not None:
        mask = mask & segment_mask(segment_ids, segment_ids)
    return mask


class DecoderOnlyLayer(nnx.Module):
    """Block: self-attention then gated MLP, each a residual branch with the configured norm placement.

    Dropout holds no RNG stream (the layer may be one slice of a scanned stack): keys come per call.
    """

    def __init__(self, config: DecoderOnlyConfig, *, rngs: nnx.Rngs):
        dtype, param_dtype = jnp.dtype(config.dtype), jnp.dtype(config.param_dtype)
        # GPT-2's depth-scaled residual init (variance / 2L on the branch outputs); LayerNorm Scaling drops it.
        out_init_scale = 1.0 if config.norm == "lns" else 1.0 / (2 * config.num_layers)
        self.attention_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.attention = MultiHeadAttention(
            config.d_model, config.num_heads, config.head_dim, num_kv_heads=config.num_kv_heads,
            fold_query_scale=False, out_init_scale=out_init_scale, dropout_rate=config.dropout_rate,
            keyed_dropout=True, attention=config.attention, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.mlp_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=dtype, param_dtype=param_dtype)
        self.mlp = GatedMLP(
            config.d_model, config.d_ff, activation=config.activation, dropout_rate=config.dropout_rate,
            out_init_scale=out_init_scale, keyed_dropout=True, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
        )  # fmt: skip
        self.dropout = nnx.Dropout(config.dropout_rate)

    def __call__(
        self,
        x: jax.Array,
        rope: Rope,
        mask: jax.Array,
        placement: NormPlacement,
        *,
        cache: KVCache | None = None,
        cache_index: jax.Array | None = None,
        deterministic: bool = True,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        keys = [None] * 4 if dropout_key is None else list(jax.random.split(dropout_key, 4))
        h = placement.branch_input(x, self.attention_norm)
        h, cache = self.attention.self_attend(
            h, mask, rope=rope, cache=cache, cache_index=cache_index, deterministic=deterministic,
            dropout_key=keys[0],
        )  # fmt: skip
        h = self.dropout(h, deterministic=deterministic, rngs=keys[1])
        x = placement.residual(x, h, self.attention_norm)
        h = self.mlp(placement.branch_input(x, self.mlp_norm), deterministic=deterministic, dropout_key=keys[2])
        h = self.dropout(h, deterministic=deterministic, rngs=keys[3])
        x = placement.residual(x, h, self.mlp_norm)
        return constrain(x, EMBED_NAMES), cache


class DecoderOnly(nnx.Module):
    """Decoder-only language model (optionally prefix LM) returning float32 logits."""

    def __init__(self, config: DecoderOnlyConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.dtype = jnp.dtype(config.dtype)
        param_dtype = jnp.dtype(config.param_dtype)
        self.token_embed = Embed(
            config.vocab_size, config.d_model, dtype=self.dtype, param_dtype=param_dtype, rngs=rngs
        )
        if config.scan_layers:
            make_stack = nnx.vmap(
                lambda key: DecoderOnlyLayer(config, rngs=nnx.Rngs(params=key)),
                in_axes=0,
                out_axes=0,
                transform_metadata={nnx.PARTITION_NAME: "layers"},
            )
            self.layers = make_stack(jax.random.split(rngs.params(), config.num_layers))
        else:
            self.layers = nnx.List([DecoderOnlyLayer(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = RMSNorm(config.d_model, eps=config.norm_eps, dtype=self.dtype, param_dtype=param_dtype)
        self.logits_kernel = (
            None
            if config.tie_embeddings
            else make_param(
                fan_in_init(1.0), rngs.params(), (config.d_model, config.vocab_size), param_dtype, ("embed", "vocab")
            )
        )
        # Embedding dropout; its stream also seeds every layer's dropout keys.
        self.dropout = nnx.Dropout(config.dropout_rate, rngs=rngs)

    def __call__(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """Teacher-forced forward pass: tokens [B, T] -> float32 logits [B, T, vocab]."""
        return self.unembed(
            self.features(
                decoder_input_tokens,
                decoder_segment_ids,
                decoder_positions,
                decoder_causal_attention,
                deterministic=deterministic,
            )
        )

    def unembed(self, features: jax.Array) -> jax.Array:
        """Final features [..., d_model] -> float32 logits; separate so a loss can apply it in chunks."""
        return output_logits(features, self.token_embed, self.logits_kernel, self.config.scale_tied_logits)

    def features(
        self,
        decoder_input_tokens: jax.Array,
        decoder_segment_ids: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        decoder_causal_attention: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> jax.Array:
        """Final-norm features [B, T, d_model] of the teacher-forced pass (logits = unembed of them).

        Without segment ids the model is only causal (seqio's first input is BOS = 0, so token 0
        cannot mark padding, and trailing padding is invisible to real tokens anyway).
        """
        mask = decoder_mask(decoder_input_tokens.shape[1], decoder_segment_ids, decoder_causal_attention)
        if decoder_positions is None:
            decoder_positions = default_positions(decoder_input_tokens)
        embed_key, layer_keys = self._dropout_keys(deterministic)
        x = self.dropout(self.token_embed(decoder_input_tokens), deterministic=deterministic, rngs=embed_key)
        x, _ = self._layers(x, self._rope(decoder_positions), mask, deterministic=deterministic, keys=layer_keys)
        return self.final_norm(x)

    def init_cache(self, batch_size: int, max_length: int) -> KVCache:
        """Empty keys and values [layers, B, kv_heads, max_length, head_dim] for decoding."""
        config = self.config
        shape = (config.num_layers, batch_size, config.num_kv_heads, max_length, config.head_dim)
        return KVCache.zeros(shape, self.dtype)

    def prefill(
        self,
        decoder_input_tokens: jax.Array,
        cache: KVCache,
        decoder_causal_attention: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache]:
        """Runs a prompt [B, P] into cache slots 0..P-1 (prefix positions bidirectional as in `__call__`);
        returns its float32 logits [B, P, vocab] and the cache."""
        features, cache = self._prefill_features(decoder_input_tokens, cache, decoder_causal_attention)
        return self.unembed(features), cache

    def _prefill_features(
        self, tokens: jax.Array, cache: KVCache, causal_attention: jax.Array | None
    ) -> tuple[jax.Array, KVCache]:
        """`prefill` up to the final features [B, P, d_model]: decoding unembeds only the positions it needs."""
        return self._extend(tokens, cache, jnp.zeros((tokens.shape[0],), jnp.int32), causal_attention)

    def decode_step(
        self, token: jax.Array, cache: KVCache, position: jax.Array | int, return_features: bool = False
    ) -> tuple[jax.Array, KVCache]:
        """Next-token float32 logits [B, vocab] for input tokens [B] at `position` (scalar or [B], < max_length);
        `return_features` also returns the final features [B, d_model] (for contrastive search)."""
        start = jnp.broadcast_to(jnp.asarray(position, jnp.int32), token.shape[:1])
        features, cache = self._extend(token[:, None], cache, start, None)
        if return_features:
            return self.unembed(features)[:, 0], cache, features[:, 0]
        return self.unembed(features)[:, 0], cache

    def _extend(
        self, tokens: jax.Array, cache: KVCache, start: jax.Array, causal_attention: jax.Array | None
    ) -> tuple[jax.Array, KVCache]:
        """Tokens [B, T] at positions start[b] + t: write their keys and values, return their final features."""
        length, num_slots = tokens.shape[1], cache.key.shape[3]
        positions = start[:, None] + jnp.arange(length, dtype=jnp.int32)[None]
        mask = cache_mask(positions, num_slots)
        if causal_attention is not None:  # prefill only: the prompt occupies slots 0..T-1
            prefix = causal_attention.astype(bool)
            prefix_slots = jnp.pad(prefix, ((0, 0), (0, num_slots - length)))
            mask = mask | (prefix[:, None, :, None] & prefix_slots[:, None, None, :])
        x = self.token_embed(tokens)
        x, cache = self._layers(x, self._rope(positions), mask, cache=cache, cache_index=start)
        return self.final_norm(x), cache

    def _rope(self, positions: jax.Array) -> Rope:
        return rope_tables(positions, self.config.head_dim, self.config.rope_theta)

    def _dropout_keys(self, deterministic: bool) -> tuple[jax.Array | None, jax.Array | None]:
        """A key for embedding dropout and one per layer, or None when dropout is off."""
        if deterministic or self.config.dropout_rate == 0.0:
            return None, None
        keys = jax.random.split(self.dropout.rngs(), self.config.num_layers + 1)
        return keys[0], keys[1:]

    def _layers(
        self,
        x: jax.Array,
        rope: Rope,
        mask: jax.Array,
        *,
        cache: KVCache | None = None,
        cache_index: jax.Array | None = None,
        deterministic: bool = True,
        keys: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """Runs the stack (scanned or looped, each layer under the remat policy); caches are stacked [L, ...]."""
        config = self.config

        def apply(graphdef, layer_state, x, index, key, layer_cache):
            placement = NormPlacement.for_layer(config.norm, index, config.num_layers, config.mix_ln_alpha)
            layer = nnx.merge(graphdef, layer_state)
            return layer(
                x, rope, mask, placement, cache=layer_cache, cache_index=cache_index,
                deterministic=deterministic, dropout_key=key,
            )  # fmt: skip

        # A cache travels whole (stacked [L, ...]) and each layer writes its slots into it (CacheSlot).
        if config.scan_layers:
            graphdef, state = nnx.split(self.layers)

            def body(carry, inputs):
                x, stacked = carry
                layer_state, index, key = inputs
                slot = None if stacked is None else CacheSlot(stacked, index)
                x, slot = apply(graphdef, layer_state, x, index, key, slot)
                return (x, None if slot is None else slot.stacked), None

            body = remat(body, config.remat, prevent_cse=False)
            indices = jnp.arange(config.num_layers, dtype=jnp.int32)
            (x, cache), _ = jax.lax.scan(body, (x, cache), (state, indices, keys))
            return x, cache

        for index, layer in enumerate(self.layers):
            graphdef, state = nnx.split(layer)
            layer_fn = remat(lambda state, x, key, c, g=graphdef, i=index: apply(g, state, x, i, key, c), config.remat)
            slot = None if cache is None else CacheSlot(cache, index)
            layer_key = None if keys is None else keys[index]
            x, slot = layer_fn(state, x, layer_key, slot)
            cache = None if slot is None else slot.stacked
        return x, cache

    def decoding_start(self, prompt: jax.Array, lengths: jax.Array, max_length: int, use_cache: bool = True,
                       prefix_attention: bool = True):  # fmt: skip
        """How decoding starts from right-padded prompts [B, P] (`[0] + inputs`, attended bidirectionally
        with `prefix_attention`, as a prefix LM trained, else causally) of `lengths` [B]: (first logits,
        context features, context mask, state, (step, gather)), as in EncoderDecoder.decoding_start."""
        batch, width = prompt.shape
        valid = jnp.arange(width)[None] < lengths[:, None]
        prefix_of = valid if prefix_attention else jnp.zeros_like(valid)
        if use_cache:
            cache = self.init_cache(batch, width + max_length)
            # Only the last prompt position's logits are needed: unembedding every position cost more than
            # a whole decode step at batch 32.
            features, cache = self._prefill_features(prompt, cache, prefix_of.astype(jnp.int32))

            def step(token, state, i):
                cache, lengths = state
                logits, cache, features = self.decode_step(token, cache, lengths + i, return_features=True)
                return logits, features, (cache, lengths)

            def gather(state, rows):
                return jax.tree.map(lambda a: jnp.take(a, rows, axis=1), state[0]), jnp.take(state[1], rows)

            logits = unembed_position(self, at_positions(features, lengths - 1))
            return logits, features, valid, (cache, lengths), (step, gather)

        tokens = jnp.pad(prompt, ((0, 0), (0, max_length)))
        prefix = jnp.pad(prefix_of, ((0, 0), (0, max_length))).astype(jnp.int32)

        def full_step(token, state, i):
            tokens, prefix, lengths = state
            tokens = jnp.where(jnp.arange(tokens.shape[1])[None] == (lengths + i)[:, None], token[:, None], tokens)
            features = at_positions(self.features(tokens, decoder_causal_attention=prefix), lengths + i)
            return unembed_position(self, features), features, (tokens, prefix, lengths)

        features = self.features(tokens, decoder_causal_attention=prefix)
        logits = unembed_position(self, at_positions(features, lengths - 1))
        return logits, features[:, :width], valid, (tokens, prefix, lengths), (full_step, take_rows(0))
