"""Decoding a restored model, jitted and sharded over the data axes; each model's `decoding_start`
adapts it to the search loops of `lowres.inference.decoding`.

Prompts are the `inputs` of an example (EOS included), exactly as the architecture's seqio feature
converter sees them: the encoder input of an encoder-decoder, or the prefix `[0] + inputs` of a
decoder-only model (bidirectional for a prefix LM, causal for a run trained with causal attention). With `use_cache=False` every step recomputes the whole prefix
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
from lowres.checkpoints.trained_model import TrainedModel
from lowres.errors import ConfigError
from lowres.models.architecture import abstract_split
from lowres.models import partitioning
from lowres.models.losses import merge_model


def decode_batch(
    params, inputs: jax.Array, lengths: jax.Array, key: jax.Array, *, graphdef, rest,
    config: DecodeConfig, eos_id: int, use_cache: bool = True, prefix_attention: bool = True,
) -> Decoded:  # fmt: skip
    """One padded batch of prompts -> Decoded (pure: jit it with `config` fixed)."""
    model = merge_model(graphdef, params, rest)
    *start, (step, gather) = model.decoding_start(inputs, lengths, config.max_length, use_cache, prefix_attention)
    return search(config, *start, Stepper(step, gather), eos_id=eos_id, key=key)


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
        model: TrainedModel,
        config: DecodeConfig,
        batch_size: int = 32,
        mesh: Mesh | None = None,
        rules=partitioning.DEFAULT_RULES,
        use_cache: bool = True,
    ):
        self.config, self.batch_size, self.rules = config, batch_size, rules
        self.model_config = model.config
        self.architecture = model.architecture
        self.eos_id = int(model.vocabulary.eos_id)
        self.mesh = mesh or partitioning.create_mesh(partitioning.MeshConfig())
        shards = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
        if batch_size % shards:
            raise ConfigError(f"--batch_size={batch_size} must be divisible by the {shards} data-parallel devices")
        self.batch_sharding = partitioning.batch_sharding(self.mesh, rules)
        self.row_sharding = partitioning.named_sharding(self.mesh, ("batch",), rules)
        with jax.set_mesh(self.mesh):
            self.params = jax.device_put(model.params, param_shardings(self.model_config, self.mesh, rules))
        self._decode = jax.jit(
            functools.partial(
                decode_batch, graphdef=model.graphdef, rest=model.rest,
                config=config, eos_id=self.eos_id, use_cache=use_cache,
                # A decoder trained causally (DataConfig.decoder_attention="causal") decodes causally too.
                prefix_attention=model.info.decoder_attention == "prefix",
            )  # fmt: skip
        )
        self._calls = 0

    def prompt(self, inputs: Sequence[int]) -> list[int]:
        """Model prompt of an example's inputs (EOS included)."""
        return self.architecture.decode_prompt(inputs)

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
    from lowres.data.vocab import vocabulary as vocab_lib

    prefix = [vocab_lib.reserved_id(vocabulary, mode_token)] if mode_token else []
    return (prefix + list(vocabulary.encode(text)))[: max_length - 1] + [vocabulary.eos_id]
