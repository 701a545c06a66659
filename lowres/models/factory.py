"""Builds a model from a gin-bound choice of architecture, preset and field overrides."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import gin
import jax
from flax import nnx

from lowres.models.config import (
    DecoderOnlyConfig,
    EncoderDecoderConfig,
    decoder_only_config,
    encoder_decoder_config,
)
from lowres.models.decoder_only import DecoderOnly
from lowres.models.encoder_decoder import EncoderDecoder

ArchitectureConfig = EncoderDecoderConfig | DecoderOnlyConfig


@dataclasses.dataclass(frozen=True)
class Architecture:
    config_class: type
    from_preset: Callable[..., Any]
    model_class: type


ARCHITECTURES: dict[str, Architecture] = {
    "encoder_decoder": Architecture(EncoderDecoderConfig, encoder_decoder_config, EncoderDecoder),
    "decoder_only": Architecture(DecoderOnlyConfig, decoder_only_config, DecoderOnly),
}


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What to build; each choice is one gin binding.

    `ModelConfig.architecture = "decoder_only"`, `ModelConfig.preset = "small"`,
    `ModelConfig.norm = "mix"`, and any other field through `ModelConfig.overrides = {"d_ff": 2048}`.
    """

    architecture: str = "encoder_decoder"
    preset: str = "mini"
    norm: str | None = None  # pre | post | mix | lns; None keeps the preset's (pre)
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def resolve(self, vocab_size: int) -> ArchitectureConfig:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"ModelConfig.architecture={self.architecture!r} is unknown; choose one of {sorted(ARCHITECTURES)}"
            )
        overrides = dict(self.overrides)
        if self.norm is not None:
            overrides["norm"] = self.norm
        return ARCHITECTURES[self.architecture].from_preset(self.preset, vocab_size, **overrides)


def architecture_of(config: ArchitectureConfig) -> str:
    for name, arch in ARCHITECTURES.items():
        if isinstance(config, arch.config_class):
            return name
    raise TypeError(f"not a model config: {type(config).__name__}")


def build_model(config: ArchitectureConfig, seed: int = 0) -> nnx.Module:
    return ARCHITECTURES[architecture_of(config)].model_class(config, rngs=nnx.Rngs(seed))


def abstract_split(config: ArchitectureConfig, seed: int = 0):
    """(graphdef, abstract params) of a model, without allocating it."""
    graphdef, params, _ = nnx.split(nnx.eval_shape(lambda: build_model(config, seed)), nnx.Param, ...)
    return graphdef, params


def non_param_state(config: ArchitectureConfig, seed: int = 0):
    """The model's state besides parameters (dropout RNG streams): small, replicated, never trained."""
    return jax.jit(lambda: nnx.split(build_model(config, seed), nnx.Param, ...)[2])()


def config_to_dict(config: ArchitectureConfig) -> dict[str, Any]:
    return {"architecture": architecture_of(config), **dataclasses.asdict(config)}


def config_from_dict(data: Mapping[str, Any]) -> ArchitectureConfig:
    fields = dict(data)
    architecture = fields.pop("architecture", "encoder_decoder")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r} in saved model config")
    return ARCHITECTURES[architecture].config_class(**fields)
