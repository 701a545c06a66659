"""The two model families as records, and the gin-bound choice of architecture, preset and overrides.

An `Architecture` owns everything that differs between encoder-decoder and decoder-only models: the
config and model classes, the seqio feature converter that turns (inputs, targets) examples into the
model's features, how a decoding prompt is laid out, and how many tokens and FLOPs a step has.
Callers look the record up (`architecture_for`) instead of branching on the architecture's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gin
import jax
import seqio
import tensorflow as tf
from flax import nnx

from lowres.config_fields import any_value, one_of, validated
from lowres.errors import ConfigError, DataError
from lowres.models import flops
from lowres.models.config import (
    ATTENTION_IMPLEMENTATIONS,
    NORMS,
    DecoderOnlyConfig,
    EncoderDecoderConfig,
    decoder_only_config,
    encoder_decoder_config,
)
from lowres.models.decoder_only import DecoderOnly
from lowres.models.encoder_decoder import EncoderDecoder

ArchitectureConfig = EncoderDecoderConfig | DecoderOnlyConfig
DECODER_ATTENTIONS = ("prefix", "causal")


class CausalDecoderFeatureConverter(seqio.PrefixLMFeatureConverter):
    """Decoder-only features without `decoder_causal_attention`: the model attends causally over the
    inputs too (a causal LM trained on the same (inputs, targets) sequences); loss stays on the targets."""

    MODEL_FEATURES = {k: v for k, v in seqio.PrefixLMFeatureConverter.MODEL_FEATURES.items()
                      if k != "decoder_causal_attention"}  # fmt: skip

    def _convert_features(self, ds: tf.data.Dataset, task_feature_lengths: Mapping[str, int]) -> tf.data.Dataset:
        ds = super()._convert_features(ds, task_feature_lengths)
        return ds.map(lambda ex: {k: v for k, v in ex.items() if k != "decoder_causal_attention"},
                      num_parallel_calls=tf.data.AUTOTUNE)  # fmt: skip

    def get_model_feature_lengths(self, task_feature_lengths: Mapping[str, int]) -> dict[str, int]:
        lengths = super().get_model_feature_lengths(task_feature_lengths)
        lengths.pop("decoder_causal_attention", None)
        return lengths


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One model family: its classes and the conventions its data, decoding and FLOP count follow."""

    name: str
    config_class: type
    from_preset: Callable[..., Any]
    model_class: type
    decoder_only: bool

    def feature_converter(self, pack: bool = True, decoder_attention: str = "prefix") -> seqio.FeatureConverter:
        """The seqio converter from (inputs, targets) examples to this model's features.

        Encoder-decoder: inputs to the encoder, targets to the decoder (`decoder_attention` is ignored).
        Decoder-only: one sequence, inputs + targets, loss on the targets only; "prefix" attends
        bidirectionally over the inputs (UL2's prefix LM), "causal" attends causally everywhere.
        """
        if not self.decoder_only:
            return seqio.EncDecFeatureConverter(pack=pack)
        if decoder_attention not in DECODER_ATTENTIONS:
            raise ConfigError(f"decoder_attention={decoder_attention!r}; choose one of {', '.join(DECODER_ATTENTIONS)}")
        if decoder_attention == "causal":
            return CausalDecoderFeatureConverter(pack=pack, loss_on_targets_only=True)
        return seqio.PrefixLMFeatureConverter(pack=pack, loss_on_targets_only=True)

    def decode_prompt(self, inputs: Sequence[int]) -> list[int]:
        """The prompt a decoding loop feeds for an example's `inputs` (EOS included), laid out as the
        feature converter lays out the inputs in training: the encoder input, or `[0] + inputs`
        (the decoder's BOS, then the prefix) for a decoder-only model."""
        return [0, *inputs] if self.decoder_only else list(inputs)

    def tokens_per_step(self, batch_size: int, inputs_length: int, targets_length: int) -> int:
        """Positions a step processes: inputs + targets per example, for both families."""
        return batch_size * (inputs_length + targets_length)

    def training_flops(self, config: Any, batch_size: int, inputs_length: int, targets_length: int) -> float:
        """Model FLOPs of one training step over the global batch (lowres.models.flops' convention)."""
        if self.decoder_only:
            return flops.training_flops_per_step(config, batch_size, inputs_length + targets_length)
        return flops.training_flops_per_step(config, batch_size, inputs_length, targets_len=targets_length)


ARCHITECTURES: dict[str, Architecture] = {
    "encoder_decoder": Architecture("encoder_decoder", EncoderDecoderConfig, encoder_decoder_config, EncoderDecoder,
                                    decoder_only=False),
    "decoder_only": Architecture("decoder_only", DecoderOnlyConfig, decoder_only_config, DecoderOnly,
                                 decoder_only=True),
}


def architecture_for(config_or_name: ArchitectureConfig | Architecture | str) -> Architecture:
    """The record of a model config, or of an architecture name as lowres.json stores it."""
    if isinstance(config_or_name, Architecture):
        return config_or_name
    if isinstance(config_or_name, str):
        if config_or_name not in ARCHITECTURES:
            raise ConfigError(f"architecture {config_or_name!r} is unknown; choose one of {sorted(ARCHITECTURES)}")
        return ARCHITECTURES[config_or_name]
    for arch in ARCHITECTURES.values():
        if isinstance(config_or_name, arch.config_class):
            return arch
    raise TypeError(f"not a model config: {type(config_or_name).__name__}")


@gin.configurable
@validated(architecture=one_of(*ARCHITECTURES), preset=any_value("a preset of the architecture: `lowres models list`"),
           norm=one_of(*NORMS), attention=one_of(*ATTENTION_IMPLEMENTATIONS))  # fmt: skip
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What to build; each choice is one gin binding.

    `ModelConfig.architecture = "decoder_only"`, `ModelConfig.preset = "small"`,
    `ModelConfig.norm = "mix"`, `ModelConfig.attention = "dot_product"`, and any other field through
    `ModelConfig.overrides = {"d_ff": 2048}`.
    """

    architecture: str = "encoder_decoder"
    preset: str = "mini"
    norm: str | None = None  # pre | post | mix | lns; None keeps the preset's (pre)
    attention: str | None = None  # plain | dot_product | cudnn (config.ATTENTION_IMPLEMENTATIONS); None: plain
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def resolve(self, vocab_size: int) -> ArchitectureConfig:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"ModelConfig.architecture={self.architecture!r} is unknown; choose one of {sorted(ARCHITECTURES)}"
            )
        overrides = dict(self.overrides)
        if self.norm is not None:
            overrides["norm"] = self.norm
        if self.attention is not None:
            overrides["attention"] = self.attention
        return ARCHITECTURES[self.architecture].from_preset(self.preset, vocab_size, **overrides)


def architecture_of(config: ArchitectureConfig) -> str:
    return architecture_for(config).name


def build_model(config: ArchitectureConfig, seed: int = 0) -> nnx.Module:
    return architecture_for(config).model_class(config, rngs=nnx.Rngs(seed))


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
        raise DataError(f"unknown architecture {architecture!r} in a saved model config")
    return ARCHITECTURES[architecture].config_class(**fields)
