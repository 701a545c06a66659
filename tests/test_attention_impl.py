"""The attention implementations (config.ATTENTION_IMPLEMENTATIONS) compute the same function: outputs,
gradients and cached greedy decoding of "dot_product" (jax.nn.dot_product_attention) against "plain".

Each check runs the same parameters both ways; compiling is most of the time, so the models are the
smallest that still have every feature compared (and share their shapes, so initialisers compile once).
"""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lowres import run_dir
from lowres.checkpoints.trained_model import TrainedModel
from lowres.errors import ConfigError
from lowres.files import write_json
from lowres.inference.decoding import DecodeConfig
from lowres.inference.generate import Generator
from lowres.models import decoder_only_config, encoder_decoder_config
from lowres.models.architecture import (
    ModelConfig,
    architecture_for,
    build_model,
    config_to_dict,
)
from lowres.models.layers import MultiHeadAttention
from tests.test_decoder_only import packed_batch as decoder_only_batch
from tests.test_encoder_decoder import packed_batch as encoder_decoder_batch

VOCAB = 128
EOS = 1
IMPLEMENTATIONS = ("plain", "dot_product")
# One layer per stack: depth adds nothing to what is compared. The decoder-only preset (2 layers) is
# kept: its stack is scanned, so it compiles once, and it has 4 query heads on 2 K/V heads.
CONFIGS = {
    "encoder_decoder": encoder_decoder_config("tiny", VOCAB, num_encoder_layers=1, num_decoder_layers=1),
    "decoder_only": decoder_only_config("tiny", VOCAB),
}


def build(config, attention: str) -> nnx.Module:
    # rbg keys: threefry makes CPU compilation of initialisers several times slower (as in test_decoder_only).
    model_class = architecture_for(config).model_class
    return model_class(dataclasses.replace(config, attention=attention), rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))


@nnx.jit
def logits_and_grads(model, batch):
    """Logits and the gradient of a loss reading every logit, for every parameter."""

    def loss(model):
        logits = model(**batch)
        return jnp.mean(jnp.sin(logits) * logits), logits

    (_, logits), grads = nnx.value_and_grad(loss, has_aux=True)(model)
    return logits, nnx.to_pure_dict(grads)


@pytest.mark.parametrize("architecture", CONFIGS)
def test_same_logits_and_gradients(architecture):
    # Packed rows with padding (segment masks; a fully masked row per pad query). Encoder-decoder: T5's
    # relative bias [1, H, T, S] and cross-attention. Decoder-only: grouped-query heads (query head h
    # reads K/V head h // 2 both ways), RoPE restarting per segment, a bidirectional prefix, the scan.
    config = CONFIGS[architecture]
    batch = encoder_decoder_batch() if architecture == "encoder_decoder" else decoder_only_batch()
    assert architecture == "encoder_decoder" or config.num_kv_heads < config.num_heads
    out = {impl: jax.device_get(logits_and_grads(build(config, impl), batch)) for impl in IMPLEMENTATIONS}
    (plain_logits, plain_grads), (logits, grads) = out["plain"], out["dot_product"]
    np.testing.assert_allclose(logits, plain_logits, rtol=1e-5, atol=1e-5)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(plain_grads), strict=True):
        scale = max(float(np.abs(b).max()), 1e-6)  # each gradient relative to its size
        np.testing.assert_allclose(a / scale, b / scale, rtol=1e-5, atol=1e-5, err_msg=jax.tree_util.keystr(path))
        assert np.abs(b).max() > 0 or "relative_bias" not in jax.tree_util.keystr(path)  # it is learned


def trained(config, attention: str) -> TrainedModel:
    """`TrainedModel.initialized`, from `build`'s rbg keys (initialisers already compiled above)."""
    config = dataclasses.replace(config, attention=attention)
    graphdef, params, rest = nnx.split(build(config, attention), nnx.Param, ...)
    info = run_dir.RunInfo(config_to_dict(config), vocabulary="", num_sentinels=0, inputs_length=16,
                           targets_length=16)  # fmt: skip
    return TrainedModel(info, config, types.SimpleNamespace(eos_id=EOS), graphdef, rest, nnx.to_pure_dict(params), 0)


@pytest.mark.parametrize("architecture", CONFIGS)
def test_cached_greedy_decoding_same_tokens(architecture):
    # The KV cache: masks span every cache slot; cross-attention's padding mask is [B, 1, 1, S] (cuDNN
    # needs it full length); the decoder-only prompt is prefilled with a prefix mask.
    rng = np.random.default_rng(0)
    inputs = [list(rng.integers(3, VOCAB, size=n)) + [EOS] for n in (3, 9, 6)]
    outputs = {}
    for attention in IMPLEMENTATIONS:
        gen = Generator(trained(CONFIGS[architecture], attention), DecodeConfig("greedy", max_length=5), batch_size=4)
        prompts, lengths = np.zeros((4, 12), np.int32), np.ones((4,), np.int32)  # row 3: an empty prompt
        for row, x in enumerate(inputs):
            p = gen.prompt(x)
            prompts[row, : len(p)], lengths[row] = p, len(p)
        outputs[attention] = jax.device_get(gen.decode_padded(prompts, lengths))
    np.testing.assert_array_equal(outputs["dot_product"].tokens, outputs["plain"].tokens)
    np.testing.assert_allclose(outputs["dot_product"].scores, outputs["plain"].scores, rtol=1e-5, atol=1e-5)


def attention_layer(implementation: str, **kwargs) -> MultiHeadAttention:
    """4 query heads on 2 K/V heads, queries scaled at runtime (the decoder-only configuration)."""
    return MultiHeadAttention(32, 4, 8, num_kv_heads=2, fold_query_scale=False, attention=implementation,
                              rngs=nnx.Rngs(jax.random.key(0, impl="rbg")), **kwargs)  # fmt: skip


def test_bfloat16_compute():
    # The attention layer alone (a model adds nothing here): bias, mask with a fully masked row, GQA.
    # Both paths take float32 logits and softmax from bfloat16 q and k and round the weights to bfloat16.
    rng = np.random.default_rng(1)
    x, bias = rng.normal(size=(2, 6, 32)).astype(np.float32), rng.normal(size=(1, 4, 6, 6)).astype(np.float32)
    mask = np.tril(np.ones((6, 6), bool))[None, None] & np.array([True, False])[:, None, None, None]  # row 1: none

    @nnx.jit
    def apply(layer):
        return layer(x, x, mask, bias)

    out = {impl: np.float32(apply(attention_layer(impl, dtype=jnp.bfloat16))) for impl in IMPLEMENTATIONS}
    assert out["plain"].dtype == np.float32 and np.isfinite(out["plain"]).all()
    np.testing.assert_allclose(out["dot_product"], out["plain"], rtol=2e-2, atol=2e-2)


def test_dropout_training_falls_back_to_the_plain_path():
    # Attention-weight dropout exists on the plain path only: a dropout step gives the same result either way.
    @nnx.jit(static_argnames="deterministic")
    def apply(layer, x, deterministic):
        return layer(x, x, deterministic=deterministic, dropout_key=jax.random.key(2))

    x = np.random.default_rng(1).normal(size=(2, 5, 32)).astype(np.float32)
    out = {impl: apply(attention_layer(impl, dropout_rate=0.5), x, False) for impl in IMPLEMENTATIONS}
    np.testing.assert_array_equal(out["dot_product"], out["plain"])
    assert not np.allclose(out["plain"], apply(attention_layer("plain", dropout_rate=0.5), x, True), atol=1e-3)


def test_unknown_implementation_is_a_config_error():
    with pytest.raises(ConfigError, match=r"attention must be one of \('plain', 'dot_product', 'cudnn'\), got 'flash'"):
        encoder_decoder_config("tiny", VOCAB, attention="flash")
    with pytest.raises(ConfigError, match="ModelConfig.attention"):
        ModelConfig(architecture="decoder_only", preset="tiny", attention="flash")
    with pytest.raises(ConfigError, match='attention="cudnn" needs dtype'):
        decoder_only_config("tiny", VOCAB, attention="cudnn")
    # The gin binding reaches the config, over `overrides`, as ModelConfig.norm does.
    model = ModelConfig(architecture="decoder_only", preset="tiny", attention="dot_product",
                        overrides={"attention": "plain"})  # fmt: skip
    assert model.resolve(VOCAB).attention == "dot_product"


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="cuDNN runs on a GPU")
def test_cudnn_off_gpu_is_a_config_error():
    # The config and the model build anywhere (a CPU host may read a GPU run's checkpoint); attending fails.
    config = ModelConfig(architecture="decoder_only", preset="tiny", attention="cudnn",
                         overrides={"dtype": "bfloat16"}).resolve(VOCAB)  # fmt: skip
    model = nnx.eval_shape(lambda: build_model(config))
    with pytest.raises(ConfigError, match='attention="cudnn" needs a GPU .*use attention="dot_product"'):
        nnx.eval_shape(lambda m: m(jnp.ones((1, 4), jnp.int32)), model)


def test_a_run_resumes_under_another_implementation(tmp_path):
    # lowres.json from before the field (no "attention"), or from a run under another implementation: the
    # same model. Any other field still refuses the directory.
    from lowres.training.trainer import _check_resumable

    def info(config):
        return run_dir.RunInfo(config_to_dict(config), vocabulary="", num_sentinels=0, inputs_length=8,
                               targets_length=8)  # fmt: skip

    config = CONFIGS["decoder_only"]
    old = info(config).to_dict()
    del old["model"]["attention"]
    write_json(run_dir.run_file(tmp_path), old)
    _check_resumable(tmp_path, info(dataclasses.replace(config, attention="dot_product")))
    with pytest.raises(ConfigError, match=r"\(d_ff differ\)"):
        _check_resumable(tmp_path, info(dataclasses.replace(config, attention="dot_product", d_ff=32)))


def test_a_cudnn_run_restored_off_gpu_attends_through_xla():
    from lowres.checkpoints.trained_model import runnable_on

    config = ModelConfig(architecture="decoder_only", preset="tiny", attention="cudnn",
                         overrides={"dtype": "bfloat16"}).resolve(VOCAB)  # fmt: skip
    assert runnable_on(config, "cpu").attention == runnable_on(config, "tpu").attention == "dot_product"
    assert runnable_on(config, "gpu") is config
    assert runnable_on(dataclasses.replace(config, attention="plain"), "cpu").attention == "plain"
