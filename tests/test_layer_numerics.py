"""The models' arithmetic against references written out by hand in numpy (float64): every norm
placement through whole stacks of both architectures, rotary embeddings, and T5's relative position
buckets. Each reference follows the documented definition, not the implementation's code."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lowres.models import (
    NORMS,
    DecoderOnly,
    EncoderDecoder,
    NormPlacement,
    decoder_only_config,
    encoder_decoder_config,
)
from lowres.models.layers import (
    CacheSlot,
    KVCache,
    apply_rope,
    causal_mask,
    project,
    relative_position_bucket,
    rope_tables,
)

VOCAB = 64
EPS = 1e-6  # RMSNorm epsilon
ALPHA = 0.5  # Mix-LN: floor(0.5 * 3) = 1 Post-LN block of 3 (round() would give 2), 1 of 2


# --- references ------------------------------------------------------------------------------------


def rms_norm(x, scale):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * scale


def gelu_tanh(x):  # T5.1.1's gated GELU uses the tanh approximation (jax.nn.gelu's default)
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def rope_reference(x, positions, theta):
    """x [T, H, D], positions [T]: pair i is (x_i, x_{i + D/2}), rotated by p * theta^(-2i/D)."""
    half = x.shape[-1] // 2
    out = np.empty_like(x)
    for i in range(half):
        angle = positions[:, None] * theta ** (-2.0 * i / x.shape[-1])
        a, b = x[..., i], x[..., i + half]
        out[..., i] = a * np.cos(angle) - b * np.sin(angle)
        out[..., i + half] = b * np.cos(angle) + a * np.sin(angle)
    return out


def attention_reference(xq, xkv, p, mask, bias=None, *, rope=None, runtime_scale=False):
    """One sequence: xq [Tq, E], xkv [Tk, E]; mask bool [Tq, Tk]; bias [H, Tq, Tk]; rope (positions, theta)."""
    q = np.einsum("te,ehd->thd", xq, p["query"])
    k = np.einsum("te,ekd->tkd", xkv, p["key"])
    v = np.einsum("te,ekd->tkd", xkv, p["value"])
    if rope is not None:
        (q_pos, k_pos), theta = rope
        q, k = rope_reference(q, q_pos, theta), rope_reference(k, k_pos, theta)
    num_heads, head_dim = q.shape[1], q.shape[2]
    group = num_heads // k.shape[1]  # query head h reads K/V head h // group
    out = np.zeros((xq.shape[0], p["out"].shape[-1]))
    for h in range(num_heads):
        logits = q[:, h] @ k[:, h // group].T
        if runtime_scale:
            logits = logits / np.sqrt(head_dim)
        if bias is not None:
            logits = logits + bias[h]
        weights = softmax(np.where(mask, logits, -1e10))  # a fully masked row: uniform, like the model
        out += (weights @ v[:, h // group]) @ p["out"][h]
    return out


def mlp_reference(x, p, activation):
    return (activation(x @ p["wi_0"]) * (x @ p["wi_1"])) @ p["wo"]


def block_reference(x, sublayers, norm: str, layer: int, num_layers: int):
    """A block of residual branches [(norm scale, branch fn)] under placement `norm` for block `layer` (from 0).

    pre: x + f(N(x)); post: N(x + f(x)); mix: post in the first floor(ALPHA * L) blocks, pre after;
    lns: x + f(N(x) / sqrt(layer + 1)) (block l, counted from 1, scaled by 1/sqrt(l)).
    """
    post = norm == "post" or (norm == "mix" and layer < math.floor(ALPHA * num_layers))
    for scale, branch in sublayers:
        if post:
            x = rms_norm(x + branch(x), scale)
        else:
            h = rms_norm(x, scale)
            if norm == "lns":
                h = h / np.sqrt(layer + 1)
            x = x + branch(h)
    return x


def t5_bucket(relative_position: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """T5 (Mesh TensorFlow `_relative_position_bucket`), relative_position = key - query.

    n = query - key (> 0: the key lies in the past). Bidirectional: half the buckets for n < 0 (offset
    num_buckets / 2), |n| in the other half; unidirectional: n clipped at 0. Within a half of B buckets,
    n < B/2 has its own bucket; above, bucket B/2 + k for the largest k with
    n >= (B/2) * (max_distance / (B/2)) ** (k / (B/2)) (log-spaced), at most B - 1.
    The log condition is decided in exact integer arithmetic, never in floating point.
    """
    n = -relative_position
    offset = 0
    if bidirectional:
        num_buckets //= 2
        if n < 0:
            offset, n = num_buckets, -n
    else:
        n = max(n, 0)
    exact = num_buckets // 2
    if n < exact:
        return offset + n
    num_log = num_buckets - exact
    k = 0  # (n / exact) ** num_log >= (max_distance / exact) ** k  <=>  n^L exact^k >= max_distance^k exact^L
    while k < num_log and n**num_log * exact ** (k + 1) >= max_distance ** (k + 1) * exact**num_log:
        k += 1
    return offset + min(exact + k, num_buckets - 1)


# --- parameters ------------------------------------------------------------------------------------


def perturb(model, seed: int) -> dict:
    """Scales every parameter by 1 + 0.3 N(0, 1) (norm scales leave 1) and returns them as float64 numpy:
    a norm applied with the wrong scale, or a parameter used in the wrong place, then shows."""
    state = nnx.state(model, nnx.Param)
    pure = nnx.to_pure_dict(state)
    rng = np.random.default_rng(seed)
    pure = jax.tree.map(lambda a: np.asarray(a) * (1.0 + 0.3 * rng.standard_normal(a.shape)).astype(np.float32), pure)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return jax.tree.map(lambda a: np.asarray(a, np.float64), pure)


def tokens(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).integers(3, VOCAB, shape).astype(np.int32)


# --- norm placements -------------------------------------------------------------------------------


def decoder_only_reference(p, toks, norm: str, num_layers: int, theta: float) -> np.ndarray:
    out = []
    for row in toks:
        x = p["token_embed"]["embedding"][row]
        positions = np.arange(len(row), dtype=np.float64)
        mask = np.tril(np.ones((len(row), len(row)), bool))
        for layer in range(num_layers):
            lp = jax.tree.map(lambda a, layer=layer: a[layer], p["layers"])
            sublayers = [
                (lp["attention_norm"]["scale"],
                 lambda h, lp=lp, mask=mask, pos=positions: attention_reference(
                     h, h, lp["attention"], mask, rope=((pos, pos), theta), runtime_scale=True)),
                (lp["mlp_norm"]["scale"], lambda h, lp=lp: mlp_reference(h, lp["mlp"], silu)),
            ]  # fmt: skip
            x = block_reference(x, sublayers, norm, layer, num_layers)
        out.append(rms_norm(x, p["final_norm"]["scale"]) @ p["logits_kernel"])
    return np.stack(out)


@pytest.mark.parametrize("norm", NORMS)
def test_decoder_only_stack_matches_a_hand_computed_forward(norm):
    """Three scanned blocks (Mix-LN: block 0 Post-LN, blocks 1-2 Pre-LN), RoPE, GQA, gated SiLU, final norm."""
    config = decoder_only_config("tiny", VOCAB, num_layers=3, norm=norm, mix_ln_alpha=ALPHA)
    model = DecoderOnly(config, rngs=nnx.Rngs(0))
    p = perturb(model, 1)
    toks = tokens(0, (2, 7))
    got = np.asarray(nnx.jit(lambda m, t: m(t))(model, jnp.asarray(toks)))
    want = decoder_only_reference(p, toks, norm, 3, config.rope_theta)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    others = {other: decoder_only_reference(p, toks, other, 3, config.rope_theta) for other in NORMS if other != norm}
    assert all(np.abs(want - o).max() > 1e-2 for o in others.values()), "placements the test cannot tell apart"


def encoder_decoder_reference(p, enc, dec, norm: str, num_enc: int, num_dec: int, num_buckets: int,
                              max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    def bias(table, tq, tk, bidirectional):
        buckets = np.array([[t5_bucket(k - q, bidirectional, num_buckets, max_distance) for k in range(tk)]
                            for q in range(tq)])
        return np.transpose(table[buckets], (2, 0, 1))  # [H, Tq, Tk]

    encoded_rows, logit_rows = [], []
    for enc_row, dec_row in zip(enc, dec, strict=True):
        seg = enc_row != 0
        x = p["token_embed"]["embedding"][enc_row]
        enc_mask = (seg[:, None] == seg[None, :]) & seg[None, :]
        enc_bias = bias(p["encoder"]["relative_bias"]["embedding"], len(enc_row), len(enc_row), True)
        for layer in range(num_enc):
            lp = p["encoder"]["layers"][layer]
            sublayers = [
                (lp["pre_attention_norm"]["scale"],
                 lambda h, lp=lp, mask=enc_mask, bias=enc_bias: attention_reference(h, h, lp["attention"], mask, bias)),
                (lp["pre_mlp_norm"]["scale"], lambda h, lp=lp: mlp_reference(h, lp["mlp"], gelu_tanh)),
            ]  # fmt: skip
            x = block_reference(x, sublayers, norm, layer, num_enc)
        encoded = rms_norm(x, p["encoder"]["final_norm"]["scale"])
        encoded_rows.append(encoded)

        y = p["token_embed"]["embedding"][dec_row]
        causal = np.tril(np.ones((len(dec_row), len(dec_row)), bool))
        cross_mask = np.broadcast_to(seg[None, :], (len(dec_row), len(enc_row)))
        dec_bias = bias(p["decoder"]["relative_bias"]["embedding"], len(dec_row), len(dec_row), False)
        for layer in range(num_dec):
            lp = p["decoder"]["layers"][layer]
            sublayers = [
                (lp["pre_self_attention_norm"]["scale"],
                 lambda h, lp=lp, mask=causal, bias=dec_bias: attention_reference(h, h, lp["self_attention"], mask,
                                                                                  bias)),
                (lp["pre_cross_attention_norm"]["scale"],
                 lambda h, lp=lp, kv=encoded, mask=cross_mask: attention_reference(h, kv, lp["cross_attention"], mask)),
                (lp["pre_mlp_norm"]["scale"], lambda h, lp=lp: mlp_reference(h, lp["mlp"], gelu_tanh)),
            ]  # fmt: skip
            y = block_reference(y, sublayers, norm, layer, num_dec)
        logit_rows.append(rms_norm(y, p["decoder"]["final_norm"]["scale"]) @ p["logits_kernel"])
    return np.stack(encoded_rows), np.stack(logit_rows)


@pytest.mark.parametrize("norm", NORMS)
def test_encoder_decoder_stacks_match_a_hand_computed_forward(norm):
    """3 encoder and 2 decoder blocks (Mix-LN: block 0 of each stack Post-LN), T5 relative biases,
    cross-attention, gated GELU; row 1 of the encoder input is padded."""
    config = encoder_decoder_config("tiny", VOCAB, num_encoder_layers=3, num_decoder_layers=2, norm=norm,
                                    mix_ln_alpha=ALPHA)
    model = EncoderDecoder(config, rngs=nnx.Rngs(0))
    p = perturb(model, 2)
    enc, dec = tokens(0, (2, 9)), tokens(1, (2, 6))
    enc[1, 6:] = 0
    dec[:, 0] = 0  # BOS

    @nnx.jit
    def run(model, enc, dec):
        return model.encode(enc), model(enc, dec)

    got_encoded, got_logits = map(np.asarray, run(model, jnp.asarray(enc), jnp.asarray(dec)))
    args = (3, 2, config.relative_attention_num_buckets, config.relative_attention_max_distance)
    want_encoded, want_logits = encoder_decoder_reference(p, enc, dec, norm, *args)
    np.testing.assert_allclose(got_encoded, want_encoded, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got_logits, want_logits, atol=1e-5, rtol=1e-5)
    for other in NORMS:
        if other != norm:
            assert np.abs(encoder_decoder_reference(p, enc, dec, other, *args)[1] - want_logits).max() > 1e-2, other


@pytest.mark.parametrize(
    "placement, norm, layer",
    [(NormPlacement(), "pre", 0), (NormPlacement(post=True), "post", 0),
     (NormPlacement(scale=jax.lax.rsqrt(jnp.float32(3.0))), "lns", 2),
     # Mix-LN inside a scan: `post` is a traced bool and one evaluation serves both placements
     (NormPlacement(post=jnp.asarray(True)), "post", 0), (NormPlacement(post=jnp.asarray(False)), "pre", 0)],
    ids=["pre", "post", "lns-block3", "traced-post", "traced-pre"],
)
def test_one_decoder_only_layer_matches_its_placement(placement, norm, layer):
    """A single unscanned DecoderOnlyLayer called with an explicit NormPlacement, against one block by hand."""
    config = decoder_only_config("tiny", VOCAB, num_layers=1, scan_layers=False)
    model = DecoderOnly(config, rngs=nnx.Rngs(3))
    p = perturb(model, 4)
    lp = p["layers"][0]
    x = np.random.default_rng(5).standard_normal((1, 6, config.d_model)).astype(np.float32)
    positions = jnp.arange(6, dtype=jnp.int32)[None]
    rope = rope_tables(positions, config.head_dim, config.rope_theta)
    got, _ = model.layers[0](jnp.asarray(x), rope, causal_mask(6), placement)
    pos = np.arange(6.0)
    mask = np.tril(np.ones((6, 6), bool))
    sublayers = [
        (lp["attention_norm"]["scale"],
         lambda h: attention_reference(h, h, lp["attention"], mask, rope=((pos, pos), config.rope_theta),
                                       runtime_scale=True)),
        (lp["mlp_norm"]["scale"], lambda h: mlp_reference(h, lp["mlp"], silu)),
    ]  # fmt: skip
    # block_reference's lns scale is 1/sqrt(layer + 1): layer 2 is the 1/sqrt(3) given above
    want = block_reference(x[0].astype(np.float64), sublayers, norm, layer, num_layers=1)
    np.testing.assert_allclose(np.asarray(got)[0], want, atol=1e-5, rtol=1e-5)


# --- rotary embeddings -----------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [10000.0, 500.0])
def test_rope_matches_the_half_split_formula(theta):
    """`apply_rope` documents pairs (i, i + D/2) rotated by p * theta^(-2i/D); an interleaved layout
    (pairs (2i, 2i + 1)) is a different function, which this check tells apart."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3, 8)).astype(np.float32)
    positions = rng.integers(0, 64, (2, 5)).astype(np.int32)
    got = np.asarray(apply_rope(jnp.asarray(x), rope_tables(jnp.asarray(positions), 8, theta)))
    want = np.stack([rope_reference(x[b].astype(np.float64), positions[b].astype(np.float64), theta)
                     for b in range(2)])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)
    # the tables broadcast one position row over the batch
    shared = np.asarray(apply_rope(jnp.asarray(x), rope_tables(jnp.asarray(positions[:1]), 8, theta)))
    np.testing.assert_allclose(shared[1], rope_reference(x[1].astype(np.float64), positions[0].astype(np.float64),
                                                         theta), atol=2e-5, rtol=1e-5)
    # rotations keep norms; position 0 is the identity
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    zero = np.asarray(apply_rope(jnp.asarray(x), rope_tables(jnp.zeros((1, 5), jnp.int32), 8, theta)))
    np.testing.assert_allclose(zero, x, atol=1e-7)
    interleaved = x.reshape(2, 5, 3, 4, 2).transpose(0, 1, 2, 4, 3).reshape(2, 5, 3, 8)  # (2i, 2i+1) -> (i, i+4)
    other = np.stack([rope_reference(interleaved[b].astype(np.float64), positions[b].astype(np.float64), theta)
                      for b in range(2)])
    other = other.reshape(2, 5, 3, 2, 4).transpose(0, 1, 2, 4, 3).reshape(2, 5, 3, 8)
    assert np.abs(other - got).max() > 1e-2


def test_rope_attention_logits_depend_only_on_the_offset():
    """q(p) . k(p') through a model layer's projections depends on p - p' alone, and the whole decoder-only
    model is unchanged when every position shifts by a constant."""
    config = decoder_only_config("tiny", VOCAB, num_layers=1, scan_layers=False)
    model = DecoderOnly(config, rngs=nnx.Rngs(0))
    attention = model.layers[0].attention
    rng = np.random.default_rng(1)
    u, w = (jnp.asarray(rng.standard_normal((1, 1, config.d_model)), jnp.float32) for _ in range(2))
    group = config.num_heads // config.num_kv_heads

    def logit(p, p_key):
        q = attention.queries(u, rope_tables(jnp.asarray([[p]]), config.head_dim, config.rope_theta))[0, 0]
        k, _ = attention.keys_values(w, rope_tables(jnp.asarray([[p_key]]), config.head_dim, config.rope_theta))
        return np.asarray(jnp.einsum("hd,hd->h", q, jnp.repeat(k[0, :, 0], group, axis=0)))

    offset3 = [logit(p + 3, p) for p in (0, 4, 17, 60)]
    for value in offset3[1:]:
        np.testing.assert_allclose(value, offset3[0], atol=1e-5, rtol=1e-5)
    for p, p_key in ((0, 3), (7, 0), (5, 5)):
        assert np.abs(logit(p, p_key) - offset3[0]).max() > 1e-3, (p, p_key)
    np.testing.assert_allclose(logit(9, 9), logit(0, 0), atol=1e-5, rtol=1e-5)

    toks = jnp.asarray(tokens(0, (2, 8)))
    forward = nnx.jit(lambda m, t, pos: m(t, decoder_positions=pos))
    base = np.asarray(forward(model, toks, jnp.arange(8, dtype=jnp.int32)[None]))
    for shift in (5, 40):
        shifted = np.asarray(forward(model, toks, jnp.arange(shift, shift + 8, dtype=jnp.int32)[None]))
        np.testing.assert_allclose(shifted, base, atol=1e-4, rtol=1e-4)
    spread = np.asarray(forward(model, toks, (3 * jnp.arange(8, dtype=jnp.int32))[None]))
    assert np.abs(spread - base).max() > 1e-3  # positions do matter


# --- T5 relative position buckets ------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (64, 256), (16, 50)])
def test_relative_position_buckets_match_t5(bidirectional, num_buckets, max_distance):
    relative = np.arange(-300, 301)
    got = np.asarray(relative_position_bucket(jnp.asarray(relative), bidirectional=bidirectional,
                                              num_buckets=num_buckets, max_distance=max_distance))
    want = np.array([t5_bucket(int(r), bidirectional, num_buckets, max_distance) for r in relative])
    wrong = relative[got != want]
    assert wrong.size == 0, f"buckets differ from T5 at relative positions {wrong[:20]}: {got[got != want][:20]} " \
                            f"vs {want[got != want][:20]}"


def test_t5_bucket_reference_values():
    """Spot values of the reference itself, worked out by hand for T5's default 32 buckets / distance 128."""
    bi = lambda r: t5_bucket(r, True, 32, 128)
    uni = lambda r: t5_bucket(r, False, 32, 128)
    # bidirectional: 16 buckets per direction, 8 exact; log buckets start at 8, 16, 32, 64 -> 8, 10, 12, 14
    assert [bi(-n) for n in (0, 1, 7, 8, 11, 12, 15, 16, 31, 32, 63, 64, 127, 128, 300)] == \
        [0, 1, 7, 8, 8, 9, 9, 10, 11, 12, 13, 14, 15, 15, 15]
    assert [bi(n) for n in (1, 7, 8, 16, 300)] == [17, 23, 24, 26, 31]  # keys after the query: upper half
    # unidirectional: 16 exact, log buckets from 16 to 128 (ratio 8 over 16 buckets); future keys -> 0
    assert [uni(-n) for n in (0, 15, 16, 17, 19, 20, 21, 32, 64, 127, 128, 1000)] == \
        [0, 15, 16, 16, 17, 17, 18, 21, 26, 31, 31, 31]
    assert {uni(n) for n in range(1, 50)} == {0}


# --- projections over merged tokens, and writes into a stacked cache -------------------------------


@pytest.mark.parametrize("spec, batched, kernel_shape", [
    ("te,ef->tf", "bte,ef->btf", (6, 5)),
    ("te,ehd->thd", "bte,ehd->bthd", (6, 3, 4)),
    ("thd,hde->te", "bthd,hde->bte", (3, 4, 6)),
])  # fmt: skip
def test_project_equals_the_batched_einsum_in_value_and_gradient(spec, batched, kernel_shape):
    rng = np.random.default_rng(0)
    x_shape = (2, 7) + ((6,) if spec.startswith("te") else (3, 4))
    x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal(kernel_shape), jnp.float32)
    np.testing.assert_allclose(project(spec, x, kernel), jnp.einsum(batched, x, kernel), rtol=1e-5, atol=1e-5)
    loss = lambda f: lambda x, k: jnp.sum(jnp.sin(f(x, k)))  # noqa: E731
    ours = jax.grad(loss(lambda x, k: project(spec, x, k)), argnums=(0, 1))(x, kernel)
    reference = jax.grad(loss(lambda x, k: jnp.einsum(batched, x, k)), argnums=(0, 1))(x, kernel)
    for a, b in zip(ours, reference):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_cache_slot_writes_only_its_layer_and_each_rows_own_slots():
    layers, batch, heads, slots, dim = 3, 2, 2, 6, 4
    rng = np.random.default_rng(1)
    before = rng.standard_normal((layers, batch, heads, slots, dim)).astype(np.float32)
    stacked = KVCache(jnp.asarray(before), jnp.asarray(-before))
    new = rng.standard_normal((batch, heads, 2, dim)).astype(np.float32)  # two new slots per row
    index = np.asarray([1, 3])
    for layer in (1, jnp.asarray(2)):  # a Python layer (unrolled stacks) or a traced one (scanned)
        slot = jax.jit(lambda s, k, v, i, layer=layer: CacheSlot(s, layer).write(k, v, i).stacked)(
            stacked, jnp.asarray(new), jnp.asarray(-new), jnp.asarray(index))
        expected = before.copy()
        for row, start in enumerate(index):
            expected[int(layer), row, :, start:start + 2] = new[row]
        np.testing.assert_array_equal(slot.key, expected)
        np.testing.assert_array_equal(slot.value, -expected)
        view = CacheSlot(slot, layer)
        np.testing.assert_array_equal(view.key, expected[int(layer)])
