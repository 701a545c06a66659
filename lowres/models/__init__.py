"""Flax NNX models for lowres, with logical-axis sharding annotations."""

from lowres.models.config import (
    DECODER_ONLY_PRESETS,
    ENCODER_DECODER_PRESETS,
    NORMS,
    REMAT_POLICIES,
    DecoderOnlyConfig,
    EncoderDecoderConfig,
    decoder_only_config,
    encoder_decoder_config,
)
from lowres.models.decoder_only import DecoderOnly
from lowres.models.encoder_decoder import Decoder, Encoder, EncoderDecoder, EncoderDecoderCache
from lowres.models.grad_norms import layer_grad_norms, per_layer_grad_norms
from lowres.models.layers import (
    Embed,
    GatedMLP,
    KVCache,
    MultiHeadAttention,
    NormPlacement,
    RelativePositionBias,
    RMSNorm,
)
from lowres.models.logical import LOGICAL_AXES, check_rules_cover, constrain, logical_to_mesh_spec

__all__ = [
    "DECODER_ONLY_PRESETS",
    "ENCODER_DECODER_PRESETS",
    "LOGICAL_AXES",
    "NORMS",
    "REMAT_POLICIES",
    "Decoder",
    "DecoderOnly",
    "DecoderOnlyConfig",
    "Embed",
    "Encoder",
    "EncoderDecoder",
    "EncoderDecoderCache",
    "EncoderDecoderConfig",
    "GatedMLP",
    "KVCache",
    "MultiHeadAttention",
    "NormPlacement",
    "RMSNorm",
    "RelativePositionBias",
    "check_rules_cover",
    "constrain",
    "decoder_only_config",
    "encoder_decoder_config",
    "layer_grad_norms",
    "logical_to_mesh_spec",
    "per_layer_grad_norms",
]
