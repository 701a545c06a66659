"""Model FLOPs per training step, in MaxText's convention, for throughput and MFU reporting.

Convention (`calculate_tflops_training_per_device`): every matmul costs 2·m·n·k; a gated FFN has
three matmuls, a plain one two; causal self-attention scores count half of 4·B·T²·H·hd; the
embedding lookup, norms, softmax and relative position biases are free; forward + backward = 3 ×
forward; rematerialisation is not counted. Encoder-decoders extend it: the encoder's
self-attention is bidirectional (not halved), and cross-attention projects queries and outputs on
decoder tokens, keys and values on encoder tokens, with 4·B·T·S·H·hd for its scores.
Decoder-only configs are recognised by duck typing (`num_layers`, no `num_encoder_layers`), so
any config with those fields works.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lowres.models import config as config_lib
from lowres.errors import ConfigError

FORWARD_AND_BACKWARD = 3
DEFAULT_VOCAB_SIZE = 32128
DEFAULT_ENCODER_DECODER_LENGTH = 512  # inputs and targets alike
DEFAULT_DECODER_LENGTH = 1024


def is_decoder_only(config: Any) -> bool:
    """True for a decoder-only config (one `num_layers` stack), False for an encoder-decoder."""
    if hasattr(config, "num_encoder_layers") and hasattr(config, "num_decoder_layers"):
        return False
    if hasattr(config, "num_layers"):
        return True
    raise TypeError(f"{type(config).__name__} has neither num_layers nor num_encoder_layers/num_decoder_layers")


def _is_gated(config: Any) -> bool:
    # Every lowres activation is the gated variant; a config may opt out with `gated=False`.
    return bool(getattr(config, "gated", True))


def _ffn(config: Any, tokens: int) -> int:
    matmuls = 3 if _is_gated(config) else 2
    return matmuls * 2 * tokens * config.d_model * config.d_ff


def _qkv(config: Any, tokens: int) -> int:
    kv_heads = getattr(config, "num_kv_heads", None) or config.num_heads
    return 2 * tokens * config.d_model * (config.num_heads + 2 * kv_heads) * config.head_dim


def _attention_output(config: Any, tokens: int) -> int:
    return 2 * tokens * config.d_model * config.num_heads * config.head_dim


def _scores(config: Any, batch: int, q_len: int, k_len: int) -> int:
    """QKᵀ and attention-weighted values, both directions: 4·B·Tq·Tk·H·hd."""
    return 4 * batch * q_len * k_len * config.num_heads * config.head_dim


def _unembedding(config: Any, tokens: int) -> int:
    return 2 * tokens * config.d_model * config.vocab_size


def _decoder_only_terms(config: Any, batch: int, length: int) -> dict[str, int]:
    tokens, layers = batch * length, config.num_layers
    return {
        "ffn": layers * _ffn(config, tokens),
        "qkv": layers * _qkv(config, tokens),
        "attention_output": layers * _attention_output(config, tokens),
        "attention": layers * _scores(config, batch, length, length) // 2,
        "unembedding": _unembedding(config, tokens),
    }


def _encoder_decoder_terms(config: Any, batch: int, inputs_len: int, targets_len: int) -> dict[str, int]:
    enc_tokens, dec_tokens = batch * inputs_len, batch * targets_len
    enc_layers, dec_layers = config.num_encoder_layers, config.num_decoder_layers
    inner = config.num_heads * config.head_dim
    return {
        "encoder_ffn": enc_layers * _ffn(config, enc_tokens),
        "encoder_qkv": enc_layers * _qkv(config, enc_tokens),
        "encoder_attention_output": enc_layers * _attention_output(config, enc_tokens),
        "encoder_attention": enc_layers * _scores(config, batch, inputs_len, inputs_len),
        "decoder_ffn": dec_layers * _ffn(config, dec_tokens),
        "decoder_qkv": dec_layers * _qkv(config, dec_tokens),
        "decoder_attention_output": dec_layers * _attention_output(config, dec_tokens),
        "decoder_attention": dec_layers * _scores(config, batch, targets_len, targets_len) // 2,
        # Cross-attention: Q and O on decoder tokens, K and V on encoder tokens.
        "cross_qo": dec_layers * 2 * (2 * dec_tokens * config.d_model * inner),
        "cross_kv": dec_layers * 2 * (2 * enc_tokens * config.d_model * inner),
        "cross_attention": dec_layers * _scores(config, batch, targets_len, inputs_len),
        "unembedding": _unembedding(config, dec_tokens),
    }


def flops_breakdown(config: Any, batch_size: int, seq_len: int, *, targets_len: int | None = None) -> dict[str, float]:
    """Training FLOPs per step (forward + backward, all devices) by component; values sum to the total.

    `seq_len` is the decoder length of a decoder-only model, or the encoder (inputs) length of an
    encoder-decoder, whose targets length defaults to `seq_len`.
    """
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("targets_len", targets_len)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if is_decoder_only(config):
        if targets_len is not None:
            raise ValueError("targets_len applies only to encoder-decoder configs")
        terms = _decoder_only_terms(config, batch_size, seq_len)
    else:
        terms = _encoder_decoder_terms(config, batch_size, seq_len, seq_len if targets_len is None else targets_len)
    return {name: float(FORWARD_AND_BACKWARD * value) for name, value in terms.items()}


def training_flops_per_step(config: Any, batch_size: int, seq_len: int, *, targets_len: int | None = None) -> float:
    """Total model FLOPs of one training step over the global batch (divide by devices for per-device)."""
    return sum(flops_breakdown(config, batch_size, seq_len, targets_len=targets_len).values())


def tokens_per_step(config: Any, batch_size: int, seq_len: int, *, targets_len: int | None = None) -> int:
    """Tokens a step consumes, as the trainer counts them: inputs + targets for encoder-decoders."""
    if is_decoder_only(config):
        return batch_size * seq_len
    return batch_size * (seq_len + (seq_len if targets_len is None else targets_len))


def flops_per_token(config: Any, batch_size: int, seq_len: int, *, targets_len: int | None = None) -> float:
    """Training FLOPs per token, with tokens counted as in `tokens_per_step`."""
    total = training_flops_per_step(config, batch_size, seq_len, targets_len=targets_len)
    return total / tokens_per_step(config, batch_size, seq_len, targets_len=targets_len)


def _architectures() -> list[tuple[str, dict, Any]]:
    """(architecture, presets, builder) for every architecture config.py offers so far."""
    found = [("encoder_decoder", config_lib.ENCODER_DECODER_PRESETS, config_lib.encoder_decoder_config)]
    decoder_presets = getattr(config_lib, "DECODER_ONLY_PRESETS", None)
    decoder_builder = getattr(config_lib, "decoder_only_config", None)
    if decoder_presets is not None and decoder_builder is not None:
        found.append(("decoder_only", decoder_presets, decoder_builder))
    return found


def _summary_row(architecture: str, name: str, config: Any) -> dict[str, Any]:
    if is_decoder_only(config):
        layers = str(config.num_layers)
        per_token = flops_per_token(config, 1, DEFAULT_DECODER_LENGTH)
        kv_heads = getattr(config, "num_kv_heads", None) or config.num_heads
    else:
        layers = f"{config.num_encoder_layers}+{config.num_decoder_layers}"
        per_token = flops_per_token(config, 1, DEFAULT_ENCODER_DECODER_LENGTH)
        kv_heads = config.num_heads
    return {
        "name": name,
        "architecture": architecture,
        "params": config.num_params(),
        "layers": layers,
        "d_model": config.d_model,
        "heads": config.num_heads,
        "kv_heads": kv_heads,
        "d_ff": config.d_ff,
        "flops_per_token": per_token,
    }


def model_summary_rows(presets: Iterable[str] | None = None, *, vocab_size: int = DEFAULT_VOCAB_SIZE) -> list[dict]:
    """One row per (architecture, preset) for `lowres models list`; `None` lists every preset.

    FLOPs per token are training FLOPs at 512 inputs + 512 targets for encoder-decoders and 1024
    tokens for decoders; `layers` reads "encoder+decoder" for encoder-decoders.
    """
    architectures = _architectures()
    if presets is None:
        wanted = None
    else:
        wanted = list(presets)
        known = {name for _, table, _ in architectures for name in table}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise ConfigError(f"unknown preset(s) {unknown}; valid presets: {sorted(known)}")
    rows = []
    for architecture, table, build in architectures:
        for name in table if wanted is None else [n for n in wanted if n in table]:
            rows.append(_summary_row(architecture, name, build(name, vocab_size)))
    return rows
