"""Typed configuration and named size presets for the encoder-decoder model.

Kept free of JAX so data, training and CLI code can read model sizes without building anything.
"""

from __future__ import annotations

import dataclasses

ACTIVATIONS = ("gelu", "silu")
DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class EncoderDecoderConfig:
    """Dimensions and options of a T5.1.1-style encoder-decoder (pre-norm, gated MLP, no biases)."""

    vocab_size: int
    d_model: int
    num_heads: int
    head_dim: int
    d_ff: int
    num_encoder_layers: int
    num_decoder_layers: int
    dropout_rate: float = 0.0
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    activation: str = "gelu"  # gated: "gelu" (T5.1.1) or "silu"
    # T5.1.1 unties; when tied, the decoder output is scaled by d_model**-0.5 before the shared embedding.
    tie_embeddings: bool = False
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in (
            "vocab_size",
            "d_model",
            "num_heads",
            "head_dim",
            "d_ff",
            "num_encoder_layers",
            "num_decoder_layers",
            "relative_attention_num_buckets",
            "relative_attention_max_distance",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"{name} must be one of {DTYPES}, got {getattr(self, name)!r}")
        # Bidirectional buckets split the table in two halves, each needing an exact and a log range.
        if self.relative_attention_num_buckets < 4:
            raise ValueError("relative_attention_num_buckets must be at least 4")

    def num_params(self) -> int:
        """Exact parameter count, equal to the sizes of the initialised model's arrays."""
        d, inner = self.d_model, self.num_heads * self.head_dim
        attention = 4 * d * inner  # q, k, v, out
        mlp = 3 * d * self.d_ff  # gated: wi_0, wi_1, wo
        relative_bias = self.relative_attention_num_buckets * self.num_heads
        encoder_layer = attention + mlp + 2 * d  # 2 pre-norms
        decoder_layer = 2 * attention + mlp + 3 * d  # self + cross attention, 3 pre-norms
        encoder = self.num_encoder_layers * encoder_layer + d + relative_bias
        decoder = self.num_decoder_layers * decoder_layer + d + relative_bias
        embeddings = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return embeddings + encoder + decoder


# Dimensions without vocab_size. T5.1.1 sizes follow the released checkpoints (head_dim 64 throughout);
# "tiny" is for tests, "mini" for quick experiments on one accelerator.
ENCODER_DECODER_PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=32, num_heads=2, head_dim=16, d_ff=64, num_encoder_layers=2, num_decoder_layers=2),
    "mini": dict(d_model=128, num_heads=4, head_dim=32, d_ff=512, num_encoder_layers=4, num_decoder_layers=4),
    "small": dict(d_model=512, num_heads=6, head_dim=64, d_ff=1024, num_encoder_layers=8, num_decoder_layers=8),
    "base": dict(d_model=768, num_heads=12, head_dim=64, d_ff=2048, num_encoder_layers=12, num_decoder_layers=12),
    "large": dict(d_model=1024, num_heads=16, head_dim=64, d_ff=2816, num_encoder_layers=24, num_decoder_layers=24),
    "xl": dict(d_model=2048, num_heads=32, head_dim=64, d_ff=5120, num_encoder_layers=24, num_decoder_layers=24),
    "xxl": dict(d_model=4096, num_heads=64, head_dim=64, d_ff=10240, num_encoder_layers=24, num_decoder_layers=24),
}


def encoder_decoder_config(preset: str, vocab_size: int, **overrides) -> EncoderDecoderConfig:
    """Builds a config from a named preset, with any field overridden by keyword."""
    if preset not in ENCODER_DECODER_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {sorted(ENCODER_DECODER_PRESETS)}")
    fields = {f.name for f in dataclasses.fields(EncoderDecoderConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown EncoderDecoderConfig field(s) {unknown}; valid fields: {sorted(fields)}")
    return EncoderDecoderConfig(vocab_size=vocab_size, **{**ENCODER_DECODER_PRESETS[preset], **overrides})
