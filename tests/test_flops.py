"""Training FLOPs per step: MaxText's golden decoder value, a hand-computed encoder-decoder, scaling, summary rows."""

from __future__ import annotations

import dataclasses

import pytest

from lowres.models import config as config_lib
from lowres.models import flops
from lowres.models.config import EncoderDecoderConfig, encoder_decoder_config


@dataclasses.dataclass(frozen=True)
class DecoderStandIn:
    """The DecoderOnlyConfig fields flops.py reads, for when the real class has not landed."""

    vocab_size: int
    d_model: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    d_ff: int
    num_layers: int
    activation: str = "silu"
    tie_embeddings: bool = False

    def num_params(self) -> int:
        return 1


def decoder_config(**fields):
    cls = getattr(config_lib, "DecoderOnlyConfig", None) or DecoderStandIn
    return cls(**fields)


GOLDEN = dict(vocab_size=32000, d_model=256, num_heads=4, num_kv_heads=4, head_dim=64, d_ff=1024, num_layers=4)


def test_golden_decoder_matches_maxtext():
    config = decoder_config(**GOLDEN)
    B, T, d, ff, V, L, H, hd = 4, 256, 256, 1024, 32000, 4, 4, 64
    tokens = B * T  # 1024
    ffn = 6 * tokens * d * ff  # 1_610_612_736 per layer
    qkv = 2 * tokens * d * (H + 2 * H) * hd  # 402_653_184 per layer
    out = 2 * tokens * d * H * hd  # 134_217_728 per layer
    attention = 4 * B * T**2 * H * hd // 2  # 134_217_728 per layer
    unembedding = 2 * tokens * d * V  # 16_777_216_000
    forward = L * (ffn + qkv + out + attention) + unembedding  # 25_904_021_504
    assert 3 * forward == 77_712_064_512
    total = flops.training_flops_per_step(config, B, T)
    assert total == 77_712_064_512
    assert total / 1e12 == pytest.approx(0.077712064512, rel=0, abs=1e-15)
    assert flops.flops_per_token(config, B, T) == total / tokens


def test_grouped_query_attention_shrinks_only_kv_projections():
    full = flops.flops_breakdown(decoder_config(**GOLDEN), 4, 256)
    grouped = flops.flops_breakdown(decoder_config(**{**GOLDEN, "num_kv_heads": 1}), 4, 256)
    assert grouped["qkv"] == full["qkv"] * (4 + 2 * 1) / (4 + 2 * 4)
    assert {k: v for k, v in grouped.items() if k != "qkv"} == {k: v for k, v in full.items() if k != "qkv"}


def small_encoder_decoder() -> EncoderDecoderConfig:
    return EncoderDecoderConfig(
        vocab_size=10, d_model=8, num_heads=2, head_dim=4, d_ff=16, num_encoder_layers=1, num_decoder_layers=1
    )


def test_encoder_decoder_by_hand():
    config = small_encoder_decoder()
    B, S, T = 2, 3, 2  # encoder tokens 6, decoder tokens 4; d 8, inner 2·4 = 8, ff 16, V 10
    encoder = (
        6 * 6 * 8 * 16  # gated FFN: 4608
        + 2 * 6 * 8 * (2 + 2 * 2) * 4  # QKV: 2304
        + 2 * 6 * 8 * 8  # output: 768
        + 4 * 2 * 3 * 3 * 2 * 4  # bidirectional scores, not halved: 576
    )
    decoder = (
        6 * 4 * 8 * 16  # 3072
        + 2 * 4 * 8 * (2 + 2 * 2) * 4  # 1536
        + 2 * 4 * 8 * 8  # 512
        + 4 * 2 * 2 * 2 * 2 * 4 // 2  # causal, halved: 128
    )
    cross = (
        2 * (2 * 4 * 8 * 8)  # Q and O on decoder tokens: 1024
        + 2 * (2 * 6 * 8 * 8)  # K and V on encoder tokens: 1536
        + 4 * 2 * 2 * 3 * 2 * 4  # scores T x S: 384
    )
    unembedding = 2 * 4 * 8 * 10  # decoder tokens only: 640
    assert (encoder, decoder, cross, unembedding) == (8256, 5248, 2944, 640)
    total = flops.training_flops_per_step(config, B, S, targets_len=T)
    assert total == 3 * (encoder + decoder + cross + unembedding) == 51264
    assert flops.flops_per_token(config, B, S, targets_len=T) == total / (B * (S + T))


@pytest.mark.parametrize(
    "config, kwargs",
    [(decoder_config(**GOLDEN), {}), (small_encoder_decoder(), {"targets_len": 5})],
    ids=["decoder", "encoder_decoder"],
)
def test_breakdown_sums_to_total_and_doubles_with_batch(config, kwargs):
    breakdown = flops.flops_breakdown(config, 4, 16, **kwargs)
    assert all(value > 0 for value in breakdown.values())
    assert sum(breakdown.values()) == flops.training_flops_per_step(config, 4, 16, **kwargs)
    doubled = flops.flops_breakdown(config, 8, 16, **kwargs)
    assert doubled == {name: 2 * value for name, value in breakdown.items()}


def test_attention_quadratic_in_length_projections_linear():
    config = decoder_config(**GOLDEN)
    short, long = flops.flops_breakdown(config, 2, 128), flops.flops_breakdown(config, 2, 256)
    assert long["attention"] == 4 * short["attention"]
    for name in ("ffn", "qkv", "attention_output", "unembedding"):
        assert long[name] == 2 * short[name]

    enc_dec = small_encoder_decoder()
    short = flops.flops_breakdown(enc_dec, 2, 8, targets_len=4)
    long = flops.flops_breakdown(enc_dec, 2, 16, targets_len=4)
    assert long["encoder_attention"] == 4 * short["encoder_attention"]
    assert long["cross_attention"] == 2 * short["cross_attention"]  # linear in S at fixed T
    assert long["decoder_attention"] == short["decoder_attention"]


def test_targets_length_defaults_to_inputs_and_is_rejected_for_decoders():
    config = small_encoder_decoder()
    assert flops.training_flops_per_step(config, 2, 8) == flops.training_flops_per_step(config, 2, 8, targets_len=8)
    with pytest.raises(ValueError, match="targets_len"):
        flops.training_flops_per_step(decoder_config(**GOLDEN), 2, 8, targets_len=8)
    with pytest.raises(ValueError, match="batch_size"):
        flops.training_flops_per_step(config, 0, 8)


def test_model_summary_rows_cover_encoder_decoder_presets():
    rows = flops.model_summary_rows()
    enc_dec = [row for row in rows if row["architecture"] == "encoder_decoder"]
    assert [row["name"] for row in enc_dec] == list(config_lib.ENCODER_DECODER_PRESETS)
    small = next(row for row in enc_dec if row["name"] == "small")
    config = encoder_decoder_config("small", 32128)
    assert small["params"] == config.num_params()
    assert (small["layers"], small["d_model"], small["heads"], small["d_ff"]) == ("8+8", 512, 6, 1024)
    assert small["flops_per_token"] == flops.flops_per_token(config, 1, 512)
    assert flops.model_summary_rows(["small"], vocab_size=1000)[0]["params"] == encoder_decoder_config(
        "small", 1000
    ).num_params()
    with pytest.raises(ValueError, match="unknown preset"):
        flops.model_summary_rows(["nope"])


def test_model_summary_rows_include_decoder_presets(monkeypatch):
    presets = {"golden": {k: v for k, v in GOLDEN.items() if k != "vocab_size"}}
    monkeypatch.setattr(config_lib, "DECODER_ONLY_PRESETS", presets, raising=False)
    def build(name: str, vocab_size: int) -> DecoderStandIn:
        return DecoderStandIn(vocab_size=vocab_size, **presets[name])

    monkeypatch.setattr(config_lib, "decoder_only_config", build, raising=False)
    (row,) = flops.model_summary_rows(["golden"], vocab_size=32000)
    assert row["architecture"] == "decoder_only"
    assert (row["layers"], row["heads"], row["kv_heads"]) == ("4", 4, 4)
    assert row["flops_per_token"] == flops.flops_per_token(DecoderStandIn(**GOLDEN), 1, 1024)
