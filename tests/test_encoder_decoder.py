"""Tests for the T5.1.1-style encoder-decoder: shapes, parameter bookkeeping, masking, training, sharding."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lowres.models import (
    ENCODER_DECODER_PRESETS,
    LOGICAL_AXES,
    EncoderDecoder,
    encoder_decoder_config,
    per_layer_grad_norms,
)
from lowres.models.layers import relative_position_bucket

VOCAB = 128


def make_model(**overrides) -> EncoderDecoder:
    return EncoderDecoder(encoder_decoder_config("tiny", VOCAB, **overrides), rngs=nnx.Rngs(0))


@nnx.jit
def forward(model, batch):
    return model(**batch)


def random_tokens(seed: int, shape) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).integers(1, VOCAB, shape), jnp.int32)


def packed_batch(seed: int = 0) -> dict:
    """Row 0 packs two segments in encoder (5 + 4, 3 pad) and decoder (4 + 3, 3 pad); row 1 holds one segment."""
    enc_seg = np.array([[1] * 5 + [2] * 4 + [0] * 3, [1] * 12])
    dec_seg = np.array([[1] * 4 + [2] * 3 + [0] * 3, [1] * 10])
    enc_pos = np.array([list(range(5)) + list(range(4)) + [0] * 3, list(range(12))])
    dec_pos = np.array([list(range(4)) + list(range(3)) + [0] * 3, list(range(10))])
    enc = np.asarray(random_tokens(seed, enc_seg.shape)) * (enc_seg > 0)
    dec = np.asarray(random_tokens(seed + 1, dec_seg.shape)) * (dec_seg > 0)
    dec[0, 0] = dec[0, 4] = dec[1, 0] = 0  # decoder inputs start each segment with BOS = 0
    as_int = lambda a: jnp.asarray(a, jnp.int32)  # noqa: E731
    return dict(
        encoder_input_tokens=as_int(enc),
        decoder_input_tokens=as_int(dec),
        encoder_segment_ids=as_int(enc_seg),
        decoder_segment_ids=as_int(dec_seg),
        encoder_positions=as_int(enc_pos),
        decoder_positions=as_int(dec_pos),
    )


def test_shape_dtype_and_initial_loss():
    model = make_model()
    enc, dec = random_tokens(0, (2, 12)), random_tokens(1, (2, 10))
    logits = forward(model, dict(encoder_input_tokens=enc, decoder_input_tokens=dec))
    assert logits.shape == (2, 10, VOCAB) and logits.dtype == jnp.float32
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, random_tokens(2, (2, 10))).mean()
    assert abs(float(loss) - np.log(VOCAB)) < 1.0


def test_bfloat16_compute_keeps_float32_logits():
    model = make_model(dtype="bfloat16", tie_embeddings=True, num_encoder_layers=1, num_decoder_layers=1)
    logits = forward(model, packed_batch())
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("tie", [False, True])
def test_num_params_and_every_param_has_logical_names(tie):
    model = make_model(tie_embeddings=tie)
    params = jax.tree.leaves(nnx.state(model, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable))
    assert params and all(isinstance(p, nnx.Param) for p in params)
    assert sum(p[...].size for p in params) == model.config.num_params()
    for p in params:
        names = p.get_metadata().get("out_sharding")
        assert names is not None and len(names) == p[...].ndim, (names, p[...].shape)
        assert all(n in LOGICAL_AXES for n in names), names


def test_presets_and_config_errors():
    # Published T5.1.1 sizes at the standard 32128-entry vocabulary.
    assert round(encoder_decoder_config("small", 32128).num_params() / 1e6) == 77
    assert round(encoder_decoder_config("base", 32128).num_params() / 1e6) == 248
    assert {"tiny", "mini", "small", "base", "large", "xl"} <= set(ENCODER_DECODER_PRESETS)
    with pytest.raises(ValueError, match="tiny"):
        encoder_decoder_config("nope", VOCAB)
    with pytest.raises(ValueError, match="d_modle"):
        encoder_decoder_config("tiny", VOCAB, d_modle=8)


def test_relative_position_buckets():
    buckets = jax.jit(relative_position_bucket, static_argnames=("bidirectional", "num_buckets", "max_distance"))
    rel = jnp.arange(-300, 301)
    bi = buckets(rel, bidirectional=True, num_buckets=32, max_distance=128)
    uni = buckets(rel, bidirectional=False, num_buckets=32, max_distance=128)
    assert int(bi.min()) == 0 and int(bi.max()) == 31 and int(uni.max()) == 31
    assert int(bi[300]) == 0 and int(bi[301]) == 17 and int(bi[299]) == 1  # key after query -> upper half
    assert bool(jnp.all(uni[300:] == 0))  # causal buckets clamp future keys to distance 0
    assert bool(jnp.all(jnp.diff(uni[:301]) <= 0))  # farther back -> same or larger bucket


def test_packed_segments_are_isolated():
    model = make_model()
    batch = packed_batch()
    base = forward(model, batch)
    enc, dec = np.asarray(batch["encoder_input_tokens"]), np.asarray(batch["decoder_input_tokens"])

    changed_second = dict(batch)
    changed_second["encoder_input_tokens"] = jnp.asarray(enc).at[0, 5:9].set(7)
    changed_second["decoder_input_tokens"] = jnp.asarray(dec).at[0, 5:7].set(9)
    out = forward(model, changed_second)
    np.testing.assert_allclose(out[0, :4], base[0, :4], atol=1e-6)
    assert not np.allclose(out[0, 4:7], base[0, 4:7], atol=1e-4)

    changed_first = dict(batch)
    changed_first["encoder_input_tokens"] = jnp.asarray(enc).at[0, 0:5].set(11)
    changed_first["decoder_input_tokens"] = jnp.asarray(dec).at[0, 1:4].set(13)
    out = forward(model, changed_first)
    np.testing.assert_allclose(out[0, 4:7], base[0, 4:7], atol=1e-6)
    assert not np.allclose(out[0, :4], base[0, :4], atol=1e-4)


def test_decoder_is_causal():
    model = make_model()
    enc, dec = random_tokens(0, (2, 12)), random_tokens(1, (2, 10)).at[:, 0].set(0)
    base = forward(model, dict(encoder_input_tokens=enc, decoder_input_tokens=dec))
    for t in (1, 5, 9):
        out = forward(model, dict(encoder_input_tokens=enc, decoder_input_tokens=dec.at[:, t].add(1)))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t], atol=1e-4)


def test_padding_does_not_leak():
    model = make_model()
    enc, dec = random_tokens(0, (2, 12)), random_tokens(1, (2, 10)).at[:, 0].set(0)
    enc = enc.at[:, 7:].set(0)  # encoder padding by token id 0 (no segment ids given)
    by_token = forward(model, dict(encoder_input_tokens=enc, decoder_input_tokens=dec))

    # With segment ids, padded keys are masked whatever token they hold; padded decoder rows stay finite.
    seg_e = jnp.broadcast_to((jnp.arange(12) < 7).astype(jnp.int32), (2, 12))
    seg_d = jnp.broadcast_to((jnp.arange(10) < 6).astype(jnp.int32), (2, 10))
    batch = dict(encoder_input_tokens=enc, decoder_input_tokens=dec, encoder_segment_ids=seg_e, decoder_segment_ids=seg_d)
    by_ids = forward(model, batch)
    garbage = dict(batch, encoder_input_tokens=enc.at[:, 7:].set(5), decoder_input_tokens=dec.at[:, 6:].set(5))
    out = forward(model, garbage)
    np.testing.assert_allclose(out[:, :6], by_ids[:, :6], atol=1e-6)
    np.testing.assert_allclose(by_token[:, :6], by_ids[:, :6], atol=1e-5)  # token-0 convention agrees
    assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(jnp.isfinite(by_token)))


def test_adamw_steps_reduce_loss():
    # rbg keys: threefry-based dropout masks triple the CPU compile time of the step.
    config = encoder_decoder_config("tiny", VOCAB, dropout_rate=0.1, num_encoder_layers=1, num_decoder_layers=1)
    model = EncoderDecoder(config, rngs=nnx.Rngs(0, dropout=jax.random.key(1, impl="rbg")))
    optimizer = nnx.Optimizer(model, optax.adamw(3e-3), wrt=nnx.Param)
    batch = packed_batch()
    targets = jnp.roll(batch["decoder_input_tokens"], -1, axis=1)
    weights = (batch["decoder_segment_ids"] > 0).astype(jnp.float32)

    def loss_fn(model, deterministic):
        logits = model(**batch, deterministic=deterministic)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(losses * weights) / jnp.sum(weights)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model, False)
        optimizer.update(model, grads)
        return loss, grads

    @nnx.jit
    def eval_loss(model):
        return loss_fn(model, True)

    before = float(eval_loss(model))
    for _ in range(10):
        _, grads = step(model, optimizer)
    after = float(eval_loss(model))
    assert after < before - 0.5, (before, after)
    norms = per_layer_grad_norms(grads)
    assert set(norms) == {"encoder/layers/0", "decoder/layers/0"} and all(v > 0 for v in norms.values()), norms


@nnx.jit
def cached_decode(model, encoder_tokens, decoder_tokens):
    """Teacher-forced logits [B, T, V] from one decode_step per position, driven by lax.scan under jit."""
    cache = model.init_cache(encoder_tokens, decoder_tokens.shape[1])

    def step(cache, inputs):
        token, position = inputs
        logits, cache = model.decode_step(token, cache, position)
        return cache, logits

    positions = jnp.arange(decoder_tokens.shape[1])
    _, logits = jax.lax.scan(step, cache, (decoder_tokens.T, positions))
    return jnp.swapaxes(logits, 0, 1)


@pytest.mark.parametrize("norm", ["pre", "mix", "lns"])
def test_cached_decoding_matches_teacher_forcing(norm):
    # Two layers per stack with alpha 0.5: Mix-LN puts block 0 in Post-LN and block 1 in Pre-LN.
    model = make_model(norm=norm, mix_ln_alpha=0.5)
    assert model.config.num_params() == make_model().config.num_params()
    enc = random_tokens(0, (2, 12)).at[1, 8:].set(0)  # row 1 padded
    dec = random_tokens(1, (2, 10)).at[:, 0].set(0)
    batch = dict(encoder_input_tokens=enc, decoder_input_tokens=dec)
    full = forward(model, batch)
    np.testing.assert_allclose(cached_decode(model, enc, dec), full, atol=1e-5, rtol=1e-5)
    if norm != "pre":
        assert not np.allclose(full, forward(make_model(), batch), atol=1e-4)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from flax import nnx
    from jax.sharding import AxisType, NamedSharding
    from lowres.models import EncoderDecoder, encoder_decoder_config, check_rules_cover

    # fsdp serves both batch (activations) and embed (parameters); logical.py gives it to batch first.
    RULES = (("batch", ("data", "fsdp")), ("vocab", "tensor"), ("embed", "fsdp"), ("mlp", "tensor"),
             ("heads", "tensor"), ("kv_heads", "tensor"), ("kv", None), ("length", None), ("layers", None),
             ("relpos_buckets", None))
    check_rules_cover(RULES)
    config = encoder_decoder_config("tiny", 128, num_encoder_layers=1, num_decoder_layers=1)
    rng = np.random.default_rng(0)
    batch = {
        "encoder_input_tokens": jnp.asarray(rng.integers(1, 128, (4, 12)), jnp.int32),
        "decoder_input_tokens": jnp.asarray(rng.integers(1, 128, (4, 10)), jnp.int32),
    }
    targets = jnp.asarray(rng.integers(1, 128, (4, 10)), jnp.int32)

    def logits_and_grads(graphdef, params, rest):
        def loss(params):
            logits = nnx.merge(graphdef, params, rest)(**batch)
            return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(), logits
        (_, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return logits, grads

    graphdef, params, rest = nnx.split(EncoderDecoder(config, rngs=nnx.Rngs(0)), nnx.Param, ...)
    ref_logits, ref_grads = jax.jit(logits_and_grads, static_argnums=0)(graphdef, params, rest)

    # Same seed, built outside the mesh, then placed by the logical names (eager placement is per-op slow).
    graphdef, params, rest = nnx.split(EncoderDecoder(config, rngs=nnx.Rngs(0)), nnx.Param, ...)
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
    with jax.set_mesh(mesh), nnx.logical_axis_rules(RULES):
        specs = nnx.get_partition_spec(params)
        params = jax.device_put(params, jax.tree.map(lambda s: NamedSharding(mesh, s), specs))
        batch = jax.device_put(batch, NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"))))
        logits, grads = jax.jit(logits_and_grads, static_argnums=0)(graphdef, params, rest)

    q = params["encoder"]["layers"][0]["attention"]["query"][...]
    assert len(q.sharding.device_set) == 8 and not q.sharding.is_fully_replicated, q.sharding
    assert not logits.sharding.is_fully_replicated, logits.sharding
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), rtol=1e-5, atol=1e-5)
    flat_ref, flat = jax.tree.leaves(ref_grads), jax.tree.leaves(grads)
    assert len(flat) == len(flat_ref)
    for a, b in zip(flat, flat_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    print("SHARDED_MATCH", len(jax.devices()), len(flat))
    """
)


def test_sharded_matches_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "SHARDED_MATCH 8" in result.stdout, result.stdout + result.stderr[-2000:]
