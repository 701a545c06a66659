"""Flax NNX models for lowres, with logical-axis sharding annotations."""

from lowres.models.config import ENCODER_DECODER_PRESETS, EncoderDecoderConfig, encoder_decoder_config
from lowres.models.encoder_decoder import Decoder, Encoder, EncoderDecoder
from lowres.models.layers import Embed, GatedMLP, MultiHeadAttention, RelativePositionBias, RMSNorm
from lowres.models.logical import LOGICAL_AXES, check_rules_cover, constrain, logical_to_mesh_spec

__all__ = [
    "ENCODER_DECODER_PRESETS",
    "LOGICAL_AXES",
    "Decoder",
    "Embed",
    "Encoder",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "GatedMLP",
    "MultiHeadAttention",
    "RMSNorm",
    "RelativePositionBias",
    "check_rules_cover",
    "constrain",
    "encoder_decoder_config",
    "logical_to_mesh_spec",
]
