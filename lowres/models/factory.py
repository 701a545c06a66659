"""Builds a model from a gin-bound choice of architecture, preset and field overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gin
import jax
from flax import nnx

from lowres.models.config import EncoderDecoderConfig, encoder_decoder_config
from lowres.models.encoder_decoder import EncoderDecoder

ARCHITECTURES = ("encoder_decoder",)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What to build: e.g. `ModelConfig.preset = 'small'`, `ModelConfig.overrides = {'d_ff': 2048}`."""

    architecture: str = "encoder_decoder"
    preset: str = "mini"
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def resolve(self, vocab_size: int) -> EncoderDecoderConfig:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"ModelConfig.architecture={self.architecture!r} is unknown; choose one of {list(ARCHITECTURES)}"
            )
        return encoder_decoder_config(self.preset, vocab_size, **dict(self.overrides))


def build_model(config: EncoderDecoderConfig, seed: int = 0) -> nnx.Module:
    return EncoderDecoder(config, rngs=nnx.Rngs(seed))


def abstract_split(config: EncoderDecoderConfig, seed: int = 0):
    """(graphdef, abstract params) of a model, without allocating it."""
    graphdef, params, _ = nnx.split(nnx.eval_shape(lambda: build_model(config, seed)), nnx.Param, ...)
    return graphdef, params


def non_param_state(config: EncoderDecoderConfig, seed: int = 0):
    """The model's state besides parameters (dropout RNG streams): small, replicated, never trained."""
    return jax.jit(lambda: nnx.split(build_model(config, seed), nnx.Param, ...)[2])()


def config_to_dict(config: EncoderDecoderConfig) -> dict[str, Any]:
    return {"architecture": "encoder_decoder", **dataclasses.asdict(config)}


def config_from_dict(data: Mapping[str, Any]) -> EncoderDecoderConfig:
    fields = dict(data)
    architecture = fields.pop("architecture", "encoder_decoder")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r} in saved model config")
    return EncoderDecoderConfig(**fields)
