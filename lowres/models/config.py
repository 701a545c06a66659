"""Typed configurations and named size presets for the encoder-decoder and decoder-only models.

Kept free of JAX so data, training and CLI code can read model sizes without building anything.
"""

from __future__ import annotations

import dataclasses
from lowres.errors import ConfigError

ACTIVATIONS = ("gelu", "silu")
DTYPES = ("float32", "bfloat16", "float16")
# Where each block's norms sit: Pre-LN, Post-LN (after the residual add), Mix-LN (Post-LN in the
# first floor(mix_ln_alpha * L) blocks, Pre-LN after) and LayerNorm Scaling (Pre-LN, block l's norm
# outputs times 1/sqrt(l), "The Curse of Depth").
NORMS = ("pre", "post", "mix", "lns")
# Per-layer rematerialisation: keep everything, recompute everything, or save dot products only
# ("dots": all of them; "dots_no_batch": those without batch dimensions, i.e. the projections).
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")
# How attention is computed (the same function each way): "plain" is the model's own einsums (the
# only one with dropout on the attention weights), "dot_product" is jax.nn.dot_product_attention's
# default implementation (XLA everywhere), "cudnn" its cuDNN flash attention (GPU only, 16-bit dtype).
ATTENTION_IMPLEMENTATIONS = ("plain", "dot_product", "cudnn")


def _check_positive_ints(config, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")


def _check_common(config) -> None:
    """Checks the fields both architectures share."""
    if not 0.0 < config.norm_eps < 1.0:
        raise ConfigError(f"norm_eps must be in (0, 1), got {config.norm_eps}")
    if not 0.0 <= config.dropout_rate < 1.0:
        raise ConfigError(f"dropout_rate must be in [0, 1), got {config.dropout_rate}")
    if config.activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {config.activation!r}")
    for name in ("dtype", "param_dtype"):
        if getattr(config, name) not in DTYPES:
            raise ConfigError(f"{name} must be one of {DTYPES}, got {getattr(config, name)!r}")
    if config.norm not in NORMS:
        raise ConfigError(f"norm must be one of {NORMS}, got {config.norm!r}")
    if not 0.0 <= config.mix_ln_alpha <= 1.0:
        raise ConfigError(f"mix_ln_alpha must be in [0, 1], got {config.mix_ln_alpha}")
    if config.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {config.attention!r}")
    if config.attention == "cudnn" and config.dtype == "float32":
        raise ConfigError('attention="cudnn" needs dtype "bfloat16" or "float16" (cuDNN flash attention has no '
                          'float32 kernel); use attention="dot_product" for float32')


def _from_preset(cls, presets: dict[str, dict], preset: str, vocab_size: int, overrides: dict):
    """Builds `cls` from a named preset, with any field overridden by keyword."""
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {sorted(presets)}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(fields)}")
    return cls(vocab_size=vocab_size, **{**presets[preset], **overrides})


@dataclasses.dataclass(frozen=True)
class EncoderDecoderConfig:
    """Dimensions and options of a T5.1.1-style encoder-decoder (RMSNorm, gated MLP, no biases)."""

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
    # T5.1.1 unties; when tied, the decoder output is scaled by d_model**-0.5 before the shared embedding
    # unless scale_tied_logits is False (HF T5 checkpoints saved by transformers 5 tie without scaling).
    tie_embeddings: bool = False
    scale_tied_logits: bool = True
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    norm: str = "pre"  # one of NORMS, applied to each stack separately (Mix-LN splits each stack)
    mix_ln_alpha: float = 0.25
    norm_eps: float = 1e-6  # RMSNorm epsilon (T5's 1e-6)
    attention: str = "plain"  # one of ATTENTION_IMPLEMENTATIONS

    def __post_init__(self) -> None:
        _check_positive_ints(
            self,
            (
                "vocab_size",
                "d_model",
                "num_heads",
                "head_dim",
                "d_ff",
                "num_encoder_layers",
                "num_decoder_layers",
                "relative_attention_num_buckets",
                "relative_attention_max_distance",
            ),
        )
        _check_common(self)
        # Bidirectional buckets split the table in two halves, each needing an exact and a log range.
        if self.relative_attention_num_buckets < 4:
            raise ConfigError("relative_attention_num_buckets must be at least 4")

    def num_params(self) -> int:
        """Exact parameter count, equal to the sizes of the initialised model's arrays."""
        d, inner = self.d_model, self.num_heads * self.head_dim
        attention = 4 * d * inner  # q, k, v, out
        mlp = 3 * d * self.d_ff  # gated: wi_0, wi_1, wo
        relative_bias = self.relative_attention_num_buckets * self.num_heads
        encoder_layer = attention + mlp + 2 * d  # 2 norms
        decoder_layer = 2 * attention + mlp + 3 * d  # self + cross attention, 3 norms
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
    # UL2 20B (gated SiLU, 16 heads of 256).
    "ul2-20b": dict(
        d_model=4096, num_heads=16, head_dim=256, d_ff=16384, num_encoder_layers=32, num_decoder_layers=32,
        activation="silu",
    ),
    # ByT5: byte-level models put depth in the encoder (3:1), for use with the byte vocabulary.
    "byt5-small": dict(d_model=1472, num_heads=6, head_dim=64, d_ff=3584, num_encoder_layers=12, num_decoder_layers=4),
    "byt5-base": dict(d_model=1536, num_heads=12, head_dim=64, d_ff=3968, num_encoder_layers=18, num_decoder_layers=6),
}


def encoder_decoder_config(preset: str, vocab_size: int, **overrides) -> EncoderDecoderConfig:
    """Builds an encoder-decoder config from a named preset, with any field overridden by keyword."""
    return _from_preset(EncoderDecoderConfig, ENCODER_DECODER_PRESETS, preset, vocab_size, overrides)


@dataclasses.dataclass(frozen=True)
class DecoderOnlyConfig:
    """Dimensions and options of a Llama-style decoder: RoPE, RMSNorm, gated MLP, GQA, no biases."""

    vocab_size: int
    d_model: int
    num_heads: int
    num_kv_heads: int  # grouped-query attention: each K/V head serves num_heads // num_kv_heads queries
    head_dim: int
    d_ff: int
    num_layers: int
    dropout_rate: float = 0.0
    activation: str = "silu"  # gated
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    norm: str = "pre"  # one of NORMS
    mix_ln_alpha: float = 0.25
    norm_eps: float = 1e-6  # RMSNorm epsilon (Llama checkpoints use 1e-5 or 1e-6)
    # Tied heads scale the final features by d_model**-0.5 (unit-scale logits with N(0, 1) embeddings);
    # models imported from Llama-style checkpoints, whose tied heads do not, set False.
    scale_tied_logits: bool = True
    scan_layers: bool = True  # one stacked layer under lax.scan: compile time independent of depth
    remat: str = "none"  # one of REMAT_POLICIES, per layer
    attention: str = "plain"  # one of ATTENTION_IMPLEMENTATIONS

    def __post_init__(self) -> None:
        _check_positive_ints(
            self, ("vocab_size", "d_model", "num_heads", "num_kv_heads", "head_dim", "d_ff", "num_layers")
        )
        _check_common(self)
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_kv_heads={self.num_kv_heads} must divide num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head_dim must be even for rotary embeddings, got {self.head_dim}")
        if self.rope_theta <= 0:
            raise ConfigError(f"rope_theta must be positive, got {self.rope_theta}")
        if self.remat not in REMAT_POLICIES:
            raise ConfigError(f"remat must be one of {REMAT_POLICIES}, got {self.remat!r}")

    def num_non_embedding_params(self) -> int:
        """Parameters outside the embedding and output matrices: the figure GPT-2 model names quote."""
        d, q_inner, kv_inner = self.d_model, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attention = 2 * d * q_inner + 2 * d * kv_inner  # q, out; k, v
        layer = attention + 3 * d * self.d_ff + 2 * d  # gated MLP, 2 norms
        return self.num_layers * layer + d  # final norm

    def num_params(self) -> int:
        """Exact parameter count, equal to the sizes of the initialised model's arrays."""
        embeddings = self.vocab_size * self.d_model * (1 if self.tie_embeddings else 2)
        return embeddings + self.num_non_embedding_params()


# Dimensions without vocab_size. "tiny" is for tests, "mini" for quick experiments on one accelerator,
# "maxtext-ref" mirrors the small MaxText benchmark model (32k vocab there). GPT-2 sizes tie their
# embeddings like GPT-2, but keep the gated MLP at the listed d_ff, so they hold 1.5x GPT-2's MLP
# parameters. The translationese sizes follow "Pretraining Language Models Using Translationese"
# (56k vocab), whose 28M/85M count non-embedding parameters, the only reading under which
# 12 x 768 gives 85M: d_ff 2048 makes the gated MLP as large as GPT-2's 4x non-gated one, so
# translationese-85m is GPT-2 small (84.95M); the 28M model's dimensions are not in the abstract
# [unconfirmed]: we keep the 85M model's layer and take 4 of them (28.3M).
DECODER_ONLY_PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=32, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=64, num_layers=2),
    "mini": dict(d_model=128, num_heads=4, num_kv_heads=2, head_dim=32, d_ff=512, num_layers=4),
    "maxtext-ref": dict(d_model=256, num_heads=4, num_kv_heads=4, head_dim=64, d_ff=1024, num_layers=4),
    "gpt2-small": dict(
        d_model=768, num_heads=12, num_kv_heads=12, head_dim=64, d_ff=3072, num_layers=12, tie_embeddings=True
    ),
    "gpt2-medium": dict(
        d_model=1024, num_heads=16, num_kv_heads=16, head_dim=64, d_ff=4096, num_layers=24, tie_embeddings=True
    ),
    "translationese-28m": dict(
        d_model=768, num_heads=12, num_kv_heads=12, head_dim=64, d_ff=2048, num_layers=4, tie_embeddings=True
    ),
    "translationese-85m": dict(
        d_model=768, num_heads=12, num_kv_heads=12, head_dim=64, d_ff=2048, num_layers=12, tie_embeddings=True
    ),
}


def decoder_only_config(preset: str, vocab_size: int, **overrides) -> DecoderOnlyConfig:
    """Builds a decoder-only config from a named preset, with any field overridden by keyword."""
    return _from_preset(DecoderOnlyConfig, DECODER_ONLY_PRESETS, preset, vocab_size, overrides)
