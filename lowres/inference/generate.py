"""Decoding a restored model: model adapters for the search loops, jitted and sharded over the data axes.

Prompts are the `inputs` of an example (EOS included), exactly as the architecture's seqio feature
converter sees them: the encoder input of an encoder-decoder, or the bidirectional prefix
`[0] + inputs` of a decoder-only model. With `use_cache=False` every step recomputes the whole prefix
(the reference the cached path is tested against, and the benchmark's baseline).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from lowres.inference.decoding import DecodeConfig, Decoded, Stepper, search
from lowres.models.factory import abstract_split, architecture_of
from lowres.training import partitioning
from lowres.training.step import merge_model


def _take(axis: int):
    return lambda state, rows: jax.tree.map(lambda a: jnp.take(a, rows, axis=axis), state)


def _at(a: jax.Array, index: jax.Array) -> jax.Array:
    """a[b, index[b]] for a [B, T, ...] and index [B]."""
    return jnp.take_along_axis(a, index.reshape((-1,) + (1,) * (a.ndim - 1)), axis=1)[:, 0]


def _logits(model, features: jax.Array) -> jax.Array:
    """Logits [B, V] of one position's features [B, E]."""
    return model.unembed(features[:, None])[:, 0]


def encoder_decoder_start(model, inputs: jax.Array, max_length: int, use_cache: bool = True):
    """(first logits, context features, context mask, state, stepper) for encoder inputs [B, S]."""
    batch = inputs.shape[0]
    bos = jnp.zeros((batch,), jnp.int32)
    if use_cache:
        cache = model.init_cache(inputs, max_length + 1)  # BOS plus max_length generated tokens

        def step(token, cache, i):
            logits, cache, features = model.decode_step(token, cache, i + 1, return_features=True)
            return logits, features, cache

        logits, features, cache = step(bos, cache, -1)
        return logits, features[:, None], jnp.ones((batch, 1), bool), cache, Stepper(step, _take(0))

    segment_ids = (inputs != 0).astype(jnp.int32)
    encoded = model.encode(inputs, segment_ids)

    def full_step(token, state, i):
        decoder_tokens, encoded, segment_ids = state
        decoder_tokens = jax.lax.dynamic_update_slice_in_dim(decoder_tokens, token[:, None], i + 1, axis=1)
        features = model.decode(encoded, segment_ids, decoder_tokens, return_features=True)
        features = jax.lax.dynamic_index_in_dim(features, i + 1, axis=1, keepdims=False)
        return _logits(model, features), features, (decoder_tokens, encoded, segment_ids)

    state = (jnp.zeros((batch, max_length + 1), jnp.int32), encoded, segment_ids)
    logits, features, state = full_step(bos, state, -1)
    return logits, features[:, None], jnp.ones((batch, 1), bool), state, Stepper(full_step, _take(0))


def decoder_only_start(model, prompt: jax.Array, lengths: jax.Array, max_length: int, use_cache: bool = True):
    """The same for right-padded prompts [B, P] (`[0] + inputs`, bidirectional) of `lengths` [B]."""
    batch, width = prompt.shape
    valid = jnp.arange(width)[None] < lengths[:, None]
    if use_cache:
        cache = model.init_cache(batch, width + max_length)
        logits, cache, features = model.prefill(prompt, cache, valid.astype(jnp.int32), return_features=True)

        def step(token, state, i):
            cache, lengths = state
            logits, cache, features = model.decode_step(token, cache, lengths + i, return_features=True)
            return logits, features, (cache, lengths)

        def gather(state, rows):
            return jax.tree.map(lambda a: jnp.take(a, rows, axis=1), state[0]), jnp.take(state[1], rows)

        return _at(logits, lengths - 1), features, valid, (cache, lengths), Stepper(step, gather)

    tokens = jnp.pad(prompt, ((0, 0), (0, max_length)))
    prefix = jnp.pad(valid, ((0, 0), (0, max_length))).astype(jnp.int32)

    def full_step(token, state, i):
        tokens, prefix, lengths = state
        tokens = jnp.where(jnp.arange(tokens.shape[1])[None] == (lengths + i)[:, None], token[:, None], tokens)
        features = _at(model.features(tokens, decoder_causal_attention=prefix), lengths + i)
        return _logits(model, features), features, (tokens, prefix, lengths)

    features = model.features(tokens, decoder_causal_attention=prefix)
    logits = _logits(model, _at(features, lengths - 1))
    return logits, features[:, :width], valid, (tokens, prefix, lengths), Stepper(full_step, _take(0))


def decode_batch(
    params, inputs: jax.Array, lengths: jax.Array, key: jax.Array, *, graphdef, rest, architecture: str,
    config: DecodeConfig, eos_id: int, use_cache: bool = True,
) -> Decoded:  # fmt: skip
    """One padded batch of prompts -> Decoded (pure: jit it with `config` fixed)."""
    model = merge_model(graphdef, params, rest)
    if architecture == "encoder_decoder":
        start = encoder_decoder_start(model, inputs, config.max_length, use_cache)
    else:
        start = decoder_only_start(model, inputs, lengths, config.max_length, use_cache)
    return search(config, *start, eos_id=eos_id, key=key)


def param_shardings(model_config, mesh: Mesh, rules) -> Any:
    """NamedShardings of the parameters from their logical axis names, as in training."""
    with nnx.logical_axis_rules(rules):
        _, abstract = abstract_split(model_config)
        specs = nnx.to_pure_dict(nnx.get_partition_spec(abstract))
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)


def bucket(length: int, minimum: int = 16) -> int:
    """Padded width for a prompt length: powers of two, so few shapes get compiled."""
    width = minimum
    while width < length:
        width *= 2
    return width


class Generator:
    """A restored model ready to decode batches of token prompts, jitted once per prompt width."""

    def __init__(
        self,
        loaded: dict[str, Any],
        config: DecodeConfig,
        batch_size: int = 32,
        mesh: Mesh | None = None,
        rules=partitioning.DEFAULT_RULES,
        use_cache: bool = True,
    ):
        self.config, self.batch_size, self.rules = config, batch_size, rules
        self.model_config = loaded["config"]
        self.architecture = architecture_of(self.model_config)
        self.eos_id = int(loaded["vocabulary"].eos_id)
        self.mesh = mesh or partitioning.create_mesh(partitioning.MeshConfig())
        shards = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
        if batch_size % shards:
            raise ValueError(f"--batch_size={batch_size} must be divisible by the {shards} data-parallel devices")
        self.batch_sharding = partitioning.batch_sharding(self.mesh, rules)
        self.row_sharding = partitioning.named_sharding(self.mesh, ("batch",), rules)
        with jax.set_mesh(self.mesh):
            self.params = jax.device_put(loaded["params"], param_shardings(self.model_config, self.mesh, rules))
        self._decode = jax.jit(
            functools.partial(
                decode_batch, graphdef=loaded["graphdef"], rest=loaded["rest"], architecture=self.architecture,
                config=config, eos_id=self.eos_id, use_cache=use_cache,
            )  # fmt: skip
        )
        self._calls = 0

    def prompt(self, inputs: Sequence[int]) -> list[int]:
        """Model prompt of an example's inputs (EOS included)."""
        return list(inputs) if self.architecture == "encoder_decoder" else [0, *inputs]

    def decode_padded(self, prompts: np.ndarray, lengths: np.ndarray) -> Decoded:
        """Decodes a [batch_size, width] int32 array of right-padded prompts on the mesh."""
        key = jax.random.fold_in(jax.random.key(self.config.seed), self._calls)
        self._calls += 1
        with jax.set_mesh(self.mesh), nnx.logical_axis_rules(self.rules):
            prompts = jax.device_put(jnp.asarray(prompts, jnp.int32), self.batch_sharding)
            lengths = jax.device_put(jnp.asarray(lengths, jnp.int32), self.row_sharding)
            return self._decode(self.params, prompts, lengths, key)

    def generate(self, inputs: Sequence[Sequence[int]]) -> list[list[int]]:
        """Output ids (up to, without, EOS) for up to `batch_size` examples' inputs."""
        if not 0 < len(inputs) <= self.batch_size:
            raise ValueError(f"generate takes 1..{self.batch_size} prompts, got {len(inputs)}")
        prompts = [self.prompt(x) for x in inputs]
        width = bucket(max(len(p) for p in prompts))
        array = np.zeros((self.batch_size, width), np.int32)
        lengths = np.ones((self.batch_size,), np.int32)
        for row, prompt in enumerate(prompts):
            array[row, : len(prompt)] = prompt
            lengths[row] = len(prompt)
        decoded = jax.device_get(self.decode_padded(array, lengths))
        return [
            [int(t) for t in decoded.tokens[row, : decoded.lengths[row]] if t != self.eos_id]
            for row in range(len(prompts))
        ]

    def generate_all(self, inputs: Iterable[Sequence[int]]) -> Iterator[list[int]]:
        """Streams outputs for any number of inputs, in order, `batch_size` at a time."""
        batch: list[Sequence[int]] = []
        for item in inputs:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield from self.generate(batch)
                batch = []
        if batch:
            yield from self.generate(batch)


def mode_inputs(vocabulary, text: str, mode_token: str | None, max_length: int) -> list[int]:
    """Inputs for free generation: [mode token] + tokens of `text`, trimmed to `max_length` with EOS last."""
    from lowres.data import vocab as vocab_lib

    prefix = [vocab_lib.reserved_id(vocabulary, mode_token)] if mode_token else []
    return (prefix + list(vocabulary.encode(text)))[: max_length - 1] + [vocabulary.eos_id]
