"""Tests for the decoder-only model: shapes, parameter bookkeeping, masking, scan/remat, norm placements, KV cache."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lowres.models import (
    DECODER_ONLY_PRESETS,
    LOGICAL_AXES,
    NORMS,
    DecoderOnly,
    decoder_only_config,
    per_layer_grad_norms,
)

VOCAB = 128
# 6 layers but narrow: the depth at which norm placement visibly changes the gradient profile.
NARROW = dict(num_layers=6, d_model=16, d_ff=32, num_heads=2, num_kv_heads=1)


def make_model(**overrides) -> DecoderOnly:
    # rbg keys: threefry makes CPU compilation of initialisers and dropout masks several times slower.
    return DecoderOnly(decoder_only_config("tiny", VOCAB, **overrides), rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))


@nnx.jit
def forward(model, batch):
    return model(**batch)


def random_tokens(seed: int, shape) -> jnp.ndarray:
    return jnp.asarray(np.random.default_rng(seed).integers(1, VOCAB, shape), jnp.int32)


def as_int(a) -> jnp.ndarray:
    return jnp.asarray(a, jnp.int32)


def packed_batch(seed: int = 0) -> dict:
    """Row 0 packs two prefix-LM examples (3 prefix + 3 targets, 2 prefix + 2 targets) and 2 pads; row 1 one."""
    seg = np.array([[1] * 6 + [2] * 4 + [0] * 2, [1] * 12])
    pos = np.array([list(range(6)) + list(range(4)) + [0] * 2, list(range(12))])
    prefix = np.array([[1] * 3 + [0] * 3 + [1] * 2 + [0] * 4, [1] * 5 + [0] * 7])
    tokens = np.asarray(random_tokens(seed, seg.shape)) * (seg > 0)
    tokens[0, 0] = tokens[0, 6] = tokens[1, 0] = 0  # BOS = 0 opens each example
    return dict(
        decoder_input_tokens=as_int(tokens),
        decoder_segment_ids=as_int(seg),
        decoder_positions=as_int(pos),
        decoder_causal_attention=as_int(prefix),
    )


def named_params(model) -> list[tuple[str, nnx.Param]]:
    """(top-level attribute, parameter) for every parameter of the model."""
    flat = jax.tree_util.tree_flatten_with_path(
        nnx.state(model, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable)
    )[0]
    return [(path[0].key, p) for path, p in flat]


def test_shape_dtype_and_initial_loss():
    model = make_model()
    logits = forward(model, dict(decoder_input_tokens=random_tokens(0, (2, 12))))
    assert logits.shape == (2, 12, VOCAB) and logits.dtype == jnp.float32
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, random_tokens(1, (2, 12))).mean()
    assert abs(float(loss) - np.log(VOCAB)) < 1.0


def test_bfloat16_compute_keeps_float32_logits():
    model = make_model(dtype="bfloat16", tie_embeddings=True)
    logits = forward(model, packed_batch())
    assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize("preset", sorted(DECODER_ONLY_PRESETS))
def test_num_params_and_logical_names_per_preset(preset):
    config = decoder_only_config(preset, 32000)
    params = named_params(nnx.eval_shape(lambda: DecoderOnly(config, rngs=nnx.Rngs(0))))
    assert params and all(isinstance(p, nnx.Param) for _, p in params)
    assert sum(int(np.prod(p.shape)) for _, p in params) == config.num_params()
    for top, p in params:
        names = p.get_metadata().get("out_sharding")
        assert names is not None and len(names) == len(p.shape), (names, p.shape)
        assert all(n in LOGICAL_AXES for n in names), names
        # Scanned layers carry the stacking axis first, and only they do.
        assert (names[0] == "layers") == (top == "layers"), (top, names)
        assert top != "layers" or p.shape[0] == config.num_layers


def test_unscanned_params_are_named_and_counted():
    model = make_model(scan_layers=False)
    params = named_params(model)
    assert sum(p[...].size for _, p in params) == model.config.num_params()
    assert all("layers" not in p.get_metadata()["out_sharding"] for _, p in params)


def test_presets_and_config_errors():
    assert round(decoder_only_config("translationese-85m", 56000).num_non_embedding_params() / 1e6) == 85
    assert round(decoder_only_config("translationese-28m", 56000).num_non_embedding_params() / 1e6) == 28
    assert {"tiny", "mini", "maxtext-ref", "gpt2-small", "gpt2-medium"} <= set(DECODER_ONLY_PRESETS)
    with pytest.raises(ValueError, match="tiny"):
        decoder_only_config("nope", VOCAB)
    with pytest.raises(ValueError, match="d_modle"):
        decoder_only_config("tiny", VOCAB, d_modle=8)
    with pytest.raises(ValueError, match="num_kv_heads"):
        decoder_only_config("tiny", VOCAB, num_kv_heads=3)
    for field, value in (("norm", "sandwich"), ("remat", "some"), ("head_dim", 7)):
        with pytest.raises(ValueError, match=field):
            decoder_only_config("tiny", VOCAB, **{field: value})


def test_packed_segments_are_isolated():
    model = make_model()
    batch = packed_batch()
    base = forward(model, batch)
    tokens = batch["decoder_input_tokens"]
    out = forward(model, dict(batch, decoder_input_tokens=tokens.at[0, 7:10].set(5)))
    np.testing.assert_allclose(out[0, :6], base[0, :6], atol=1e-6)
    assert not np.allclose(out[0, 6:10], base[0, 6:10], atol=1e-4)
    out = forward(model, dict(batch, decoder_input_tokens=tokens.at[0, 1:6].set(5)))
    np.testing.assert_allclose(out[0, 6:10], base[0, 6:10], atol=1e-6)
    np.testing.assert_allclose(out[1], base[1], atol=1e-6)


def test_causal_without_prefix():
    model = make_model()
    tokens = random_tokens(0, (2, 12))
    base = forward(model, dict(decoder_input_tokens=tokens))
    for t in (1, 6, 11):
        out = forward(model, dict(decoder_input_tokens=tokens.at[:, t].add(1)))
        np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6)
        assert not np.allclose(out[:, t], base[:, t], atol=1e-4)


def test_prefix_is_bidirectional_and_targets_causal():
    model = make_model()
    batch = packed_batch()
    base = forward(model, batch)
    tokens = batch["decoder_input_tokens"]
    # Row 1's prefix is positions 0..4: changing position 3 reaches back to positions 0..2.
    out = forward(model, dict(batch, decoder_input_tokens=tokens.at[1, 3].add(1)))
    assert all(not np.allclose(out[1, t], base[1, t], atol=1e-4) for t in range(3))
    # Row 0's second example: prefix 6..7; changing it leaves the first example alone.
    out = forward(model, dict(batch, decoder_input_tokens=tokens.at[0, 7].add(1)))
    assert not np.allclose(out[0, 6], base[0, 6], atol=1e-4)
    np.testing.assert_allclose(out[0, :6], base[0, :6], atol=1e-6)
    # A target token never reaches earlier positions, prefix or target.
    for row, t in ((1, 5), (1, 9), (0, 4), (0, 9)):
        out = forward(model, dict(batch, decoder_input_tokens=tokens.at[row, t].add(1)))
        np.testing.assert_allclose(out[row, :t], base[row, :t], atol=1e-6)
        assert not np.allclose(out[row, t], base[row, t], atol=1e-4)


def test_scan_matches_loop():
    scanned = make_model(norm="mix", mix_ln_alpha=0.5)
    looped = make_model(norm="mix", mix_ln_alpha=0.5, scan_layers=False)
    stacked = nnx.state(scanned.layers, nnx.Param)
    for i, layer in enumerate(looped.layers):
        nnx.update(layer, jax.tree.map(lambda a, i=i: a[i], stacked))
    for name in ("token_embed", "final_norm"):
        nnx.update(getattr(looped, name), nnx.state(getattr(scanned, name), nnx.Param))
    looped.logits_kernel[...] = scanned.logits_kernel[...]
    batch = packed_batch()
    np.testing.assert_allclose(forward(looped, batch), forward(scanned, batch), atol=1e-5, rtol=1e-5)


@functools.partial(jax.jit, static_argnames=("graphdef", "deterministic"))
def loss_and_grads(graphdef, params, rest, batch, deterministic=True, dropout_key=None):
    """Next-token loss of `batch` and its gradients, computed the way the trainer does."""
    targets = jnp.roll(batch["decoder_input_tokens"], -1, axis=1)

    def loss(params):
        # copy=True: the RNG variables of `rest` belong to the jit trace, and dropout mutates them here.
        model = nnx.merge(graphdef, params, rest, copy=True)
        if dropout_key is not None:
            nnx.reseed(model, default=dropout_key)
        logits = model(**batch, deterministic=deterministic)
        return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()

    return jax.value_and_grad(loss)(params)


def model_loss_and_grads(model, batch, **kwargs):
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return loss_and_grads(graphdef, params, rest, batch, **kwargs)


def test_full_remat_gives_identical_gradients():
    batch = dict(decoder_input_tokens=random_tokens(0, (2, 12)))  # as in the norm placement test: compiled once
    _, reference = model_loss_and_grads(make_model(**NARROW), batch)
    _, grads = model_loss_and_grads(make_model(remat="full", **NARROW), batch)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_dropout_is_reseeded_from_a_key():
    model = make_model(dropout_rate=0.2)
    batch = packed_batch()
    targets = jnp.roll(batch["decoder_input_tokens"], -1, axis=1)
    clean = optax.softmax_cross_entropy_with_integer_labels(forward(model, batch), targets).mean()
    losses = [
        model_loss_and_grads(model, batch, deterministic=False, dropout_key=jax.random.key(seed, impl="rbg"))
        for seed in (3, 3, 4)
    ]
    (first, grads), (again, _), (other, _) = losses
    assert float(first) == float(again) and len({float(clean), float(first), float(other)}) == 3
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_norm_placements_train_and_spread_gradients_differently():
    """Every placement trains a step; on a 6-layer narrow model Mix-LN and LayerNorm Scaling change
    the per-layer gradient norms relative to Pre-LN."""
    batch = dict(decoder_input_tokens=random_tokens(0, (2, 12)))
    grad_norms = {}
    for norm in NORMS:
        graphdef, params, rest = nnx.split(make_model(norm=norm, **NARROW), nnx.Param, ...)
        before, grads = loss_and_grads(graphdef, params, rest, batch)
        grad_norms[norm] = per_layer_grad_norms(grads)
        after, _ = loss_and_grads(graphdef, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), rest, batch)
        assert float(after) < float(before), (norm, before, after)
    assert all(list(v) == [f"layers/{i}" for i in range(6)] for v in grad_norms.values()), grad_norms
    pre = np.array(list(grad_norms["pre"].values()))
    for norm in ("mix", "lns"):
        other = np.array(list(grad_norms[norm].values()))
        assert not np.allclose(other, pre, rtol=1e-3), (norm, other, pre)


@functools.partial(nnx.jit, static_argnames="prefix_length")
def cached_logits(model, tokens, prefix_length: int | None):
    """Logits [B, T, V] from prefill of the first `prefix_length` tokens (a bidirectional prefix), then
    one decode_step per remaining position, driven by lax.scan under jit."""
    batch, length = tokens.shape
    cache = model.init_cache(batch, length + 2)
    start = 0
    prefilled = []
    if prefix_length is not None:
        prefix = jnp.ones((batch, prefix_length), jnp.int32)
        logits, cache = model.prefill(tokens[:, :prefix_length], cache, prefix)
        prefilled, start = [logits], prefix_length

    def step(cache, inputs):
        token, position = inputs
        logits, cache = model.decode_step(token, cache, position)
        return cache, logits

    _, stepped = jax.lax.scan(step, cache, (tokens[:, start:].T, jnp.arange(start, length)))
    return jnp.concatenate([*prefilled, jnp.swapaxes(stepped, 0, 1)], axis=1)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_cached_decoding_matches_full_forward(scan_layers):
    model = make_model(scan_layers=scan_layers, norm="mix", mix_ln_alpha=0.5)
    tokens = random_tokens(0, (2, 10)).at[:, 0].set(0)
    prefix = jnp.broadcast_to((jnp.arange(10) < 4).astype(jnp.int32), (2, 10))
    prefix_lm = forward(model, dict(decoder_input_tokens=tokens, decoder_causal_attention=prefix))
    np.testing.assert_allclose(cached_logits(model, tokens, 4), prefix_lm, atol=1e-5, rtol=1e-5)
    if scan_layers:  # the looped stack shares every step with the scanned one but the cache slicing
        causal = forward(model, dict(decoder_input_tokens=tokens))
        assert not np.allclose(prefix_lm, causal, atol=1e-4)
        np.testing.assert_allclose(cached_logits(model, tokens, None), causal, atol=1e-5, rtol=1e-5)
