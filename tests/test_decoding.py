"""Search algorithms on a hand-built bigram model with a known next-token distribution, and cached
decoding of the real architectures against full recomputation."""

import functools
import itertools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowres.inference import decoding
from lowres.checkpoints.trained_model import TrainedModel
from lowres.inference.decoding import DecodeConfig, Stepper
from lowres.inference.generate import Generator
from lowres.models.architecture import ModelConfig

EOS = 1


def bigram_model(log_probs: np.ndarray, features: np.ndarray | None = None):
    """A 'model' whose next-token log-probs depend on the last token only: table[last] (a [V, V] array).

    Its state is the last token per row, so beam reordering and candidate expansion are exercised.
    """
    table = jnp.asarray(log_probs, jnp.float32)
    feats = jnp.asarray(np.eye(len(log_probs)) if features is None else features, jnp.float32)

    def step(token, last, i):
        return table[token], feats[token], token

    gather = lambda state, rows: jnp.take(state, rows, axis=0)  # noqa: E731
    return Stepper(step, gather), table, feats


def run(config: DecodeConfig, log_probs, batch=1, start=0, features=None, key=None):
    stepper, table, feats = bigram_model(log_probs, features)
    state = jnp.full((batch,), start, jnp.int32)
    logits = table[state]
    context, mask = feats[state][:, None], jnp.ones((batch, 1), bool)
    fn = jax.jit(lambda l, c, m, s, k: decoding.search(config, l, c, m, s, stepper, EOS, k))
    return jax.device_get(fn(logits, context, mask, state, jax.random.key(0) if key is None else key))


def random_table(vocab, seed, eos_bias=0.0):
    logits = np.random.default_rng(seed).normal(size=(vocab, vocab)) * 2
    logits[:, EOS] += eos_bias
    return np.asarray(jax.nn.log_softmax(logits))


def test_beam_one_is_greedy_and_scores_are_log_probs():
    table = random_table(7, 0, eos_bias=1.0)
    greedy = run(DecodeConfig("greedy", max_length=6), table, start=3)
    beam = run(DecodeConfig("beam", max_length=6, beam_size=1, brevity_alpha=0.0), table, start=3)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    # greedy by hand: follow the argmax chain until EOS
    last, expected = 3, []
    while len(expected) < 6 and (not expected or expected[-1] != EOS):
        last = int(np.argmax(table[last]))
        expected.append(last)
    assert list(greedy.tokens[0, : len(expected)]) == expected and greedy.lengths[0] == len(expected)
    prev = [3] + expected[:-1]
    assert greedy.scores[0] == pytest.approx(sum(table[a, b] for a, b in zip(prev, expected)), rel=1e-5)


def exhaustive_best(table, start, max_length, alpha):
    """Best EOS-terminated sequence under the t5x score, by enumerating every sequence."""
    vocab = len(table)
    best, best_score = None, -math.inf
    for length in range(1, max_length + 1):
        for body in itertools.product([t for t in range(vocab) if t != EOS], repeat=length - 1):
            seq = list(body) + [EOS]
            logp = sum(table[a, b] for a, b in zip([start] + seq[:-1], seq))
            score = logp / ((5 + length) / 6) ** alpha
            if score > best_score:
                best, best_score = seq, score
    return best, best_score


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_wide_beam_finds_the_exhaustive_optimum(alpha):
    table = random_table(4, 1)
    # beam 16 over 4 tokens and 3 steps keeps every prefix alive: the search is exact
    out = run(DecodeConfig("beam", max_length=3, beam_size=16, brevity_alpha=alpha), table, start=0)
    best, score = exhaustive_best(table, 0, 3, alpha)
    assert list(out.tokens[0, : len(best)]) == best
    assert out.scores[0] == pytest.approx(score, rel=1e-5)


def test_beam_two_finds_what_greedy_misses():
    # from 0: token 2 (p .5) leads to flat continuations (EOS .2); token 3 (p .4) leads to EOS with p .9.
    probs = np.full((5, 5), 1e-6)
    probs[0, [2, 3, 4]] = [0.5, 0.4, 0.1]
    probs[2, [2, 3, 4, EOS]] = [0.3, 0.25, 0.25, 0.2]
    probs[3, EOS], probs[3, 4] = 0.9, 0.1
    probs[4, EOS] = 1.0
    table = np.log(probs / probs.sum(1, keepdims=True))
    greedy = run(DecodeConfig("greedy", max_length=4), table)
    assert list(greedy.tokens[0, :2]) == [2, 2]
    beam = run(DecodeConfig("beam", max_length=4, beam_size=2, brevity_alpha=0.6), table)
    assert list(beam.tokens[0]) == [3, EOS, 0, 0] and beam.lengths[0] == 2
    assert beam.scores[0] == pytest.approx((math.log(0.4) + math.log(0.9)) / (7 / 6) ** 0.6, rel=1e-4)


def test_sampling_follows_the_tempered_distribution():
    logits = np.log(np.asarray([[0.1, 0.0, 0.2, 0.3, 0.4]]).repeat(5, 0) + 1e-9)  # EOS never drawn
    config = DecodeConfig("sample", max_length=1, temperature=2.0)
    out = run(config, logits, batch=20000)
    counts = np.bincount(out.tokens[:, 0], minlength=5) / 20000
    expected = np.asarray(jax.nn.softmax(logits[0] / 2.0))
    np.testing.assert_allclose(counts, expected, atol=0.015)


FILTER_CASES = [(2, 1.0, {3, 4}), (0, 0.6, {3, 4}), (0, 0.75, {3, 4}), (0, 0.85, {2, 3, 4}), (3, 0.5, {3, 4}),
                (4, 0.99, {0, 2, 3, 4})]


def test_top_k_and_top_p_never_emit_excluded_tokens():
    probs = np.asarray([0.05, 0.0, 0.15, 0.35, 0.45])
    table = np.log(np.tile(probs, (5, 1)) + 1e-12)  # every row the same: every step samples from it
    for top_k, top_p, allowed in FILTER_CASES:
        kept = decoding.filter_logits(jnp.asarray(table[:1]), top_k, top_p)[0] > -1e8
        assert set(np.flatnonzero(kept)) == allowed, (top_k, top_p)
    for top_k, top_p, allowed in (FILTER_CASES[0], FILTER_CASES[3]):
        out = run(DecodeConfig("sample", max_length=8, top_k=top_k, top_p=top_p), table, batch=1000)
        assert set(np.unique(out.tokens)) == allowed  # each allowed token drawn, nothing else


def test_contrastive_alpha_zero_is_greedy_and_the_penalty_avoids_repeats():
    table = random_table(6, 2, eos_bias=-2.0)
    greedy = run(DecodeConfig("greedy", max_length=6), table, start=2)
    plain = run(DecodeConfig("contrastive", max_length=6, contrastive_k=3, penalty_alpha=0.0), table, start=2)
    np.testing.assert_array_equal(plain.tokens, greedy.tokens)
    # token 2 is likeliest everywhere, but its feature equals the context's (token 2): penalised away
    probs = np.full((4, 4), 0.05)
    probs[:, 2], probs[:, 3] = 0.55, 0.35
    table = np.log(probs / probs.sum(1, keepdims=True))
    features = np.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.2]])
    assert run(DecodeConfig("greedy", max_length=1), table, start=2).tokens[0, 0] == 2
    out = run(DecodeConfig("contrastive", max_length=1, contrastive_k=2, penalty_alpha=0.5), table, start=2,
              features=features)
    assert out.tokens[0, 0] == 3


def test_rows_stop_at_their_own_eos():
    table = np.log(np.full((4, 4), 1e-6) + np.eye(4)[[EOS, EOS, 3, 2]])  # 0->EOS, 2->3->2->... never ends
    out = run(DecodeConfig("greedy", max_length=5), table, batch=2, start=0)
    assert list(out.tokens[0]) == [EOS, 0, 0, 0, 0] and out.lengths[0] == 1


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="method"):
        DecodeConfig("nucleus")
    with pytest.raises(ValueError, match="top_p"):
        DecodeConfig("sample", top_p=0.0)


def restored(architecture, vocab=64):
    config = ModelConfig(architecture=architecture, preset="tiny").resolve(vocab)
    return TrainedModel.initialized(config, types.SimpleNamespace(eos_id=EOS))


@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_cached_decoding_matches_full_recomputation(architecture):
    # three prompts of different lengths (plus an empty row)
    outputs = decode_with_and_without_cache(architecture, DecodeConfig("greedy", max_length=8))
    np.testing.assert_array_equal(outputs[True].tokens, outputs[False].tokens)
    np.testing.assert_allclose(outputs[True].scores, outputs[False].scores, rtol=1e-4)
    assert (outputs[True].lengths == 8).sum() >= 2  # random weights rarely stop: most steps were compared


def decode_with_and_without_cache(architecture: str, config: DecodeConfig, use_caches=(True, False)) -> dict:
    """Decoded outputs of three prompts of different lengths (plus an empty row), cached and recomputed."""
    loaded = restored(architecture)
    rng = np.random.default_rng(0)
    inputs = [list(rng.integers(3, 64, size=n)) + [EOS] for n in (3, 12, 7)]
    outputs = {}
    for use_cache in use_caches:
        gen = Generator(loaded, config, batch_size=4, use_cache=use_cache)
        prompts = np.zeros((4, 16), np.int32)
        lengths = np.ones((4,), np.int32)
        for row, x in enumerate(inputs):
            p = gen.prompt(x)
            prompts[row, : len(p)], lengths[row] = p, len(p)
        outputs[use_cache] = jax.device_get(gen.decode_padded(prompts, lengths))
    return outputs


@functools.cache
def cached_greedy_tokens(architecture: str) -> np.ndarray:
    return decode_with_and_without_cache(architecture, DecodeConfig("greedy", max_length=6), (True,))[True].tokens


SEARCHES = {
    # beam: the cache is reordered to each step's surviving beams (greedy never reorders it)
    "beam": DecodeConfig("beam", max_length=6, beam_size=3, brevity_alpha=0.6),
    # sampling: the same seed draws the same tokens when the logits agree
    "sample": DecodeConfig("sample", max_length=6, temperature=1.5, seed=3),
    # contrastive: top-k candidates are expanded from copies of the cache and compared by their features
    "contrastive": DecodeConfig("contrastive", max_length=6, contrastive_k=4, penalty_alpha=0.6),
}


@pytest.mark.parametrize("method", sorted(SEARCHES))
@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_cached_search_matches_full_recomputation(architecture, method):
    outputs = decode_with_and_without_cache(architecture, SEARCHES[method])
    cached, full = outputs[True], outputs[False]
    np.testing.assert_array_equal(cached.tokens, full.tokens)
    np.testing.assert_array_equal(cached.lengths, full.lengths)
    np.testing.assert_allclose(cached.scores, full.scores, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(cached.scores)) and (cached.lengths == 6).sum() >= 2  # most steps were compared
    # the search really departed from greedy decoding, so its own machinery was exercised
    assert not np.array_equal(cached.tokens, cached_greedy_tokens(architecture)), method


SHARDED_SCRIPT = """
import json, types
import jax, numpy as np
from flax import nnx
from lowres.inference.decoding import DecodeConfig
from lowres.inference.generate import Generator
from lowres.checkpoints.trained_model import TrainedModel
from lowres.models.architecture import ModelConfig
from lowres.models import partitioning

config = ModelConfig(architecture="encoder_decoder", preset="tiny").resolve(64)
loaded = TrainedModel.initialized(config, types.SimpleNamespace(eos_id=1))
inputs = [list(np.random.default_rng(i).integers(3, 64, size=3 + i)) + [1] for i in range(8)]
out = {}
for name, mesh_config, devices in [("one", partitioning.MeshConfig(), jax.devices()[:1]),
                                   ("mesh", partitioning.MeshConfig(data=2, fsdp=2, tensor=2), jax.devices())]:
    mesh = partitioning.create_mesh(mesh_config, devices)
    gen = Generator(loaded, DecodeConfig("beam", max_length=6, beam_size=2), batch_size=8, mesh=mesh)
    out[name] = gen.generate(inputs)
    if name == "mesh":
        out["param_sharded"] = any(len(a.sharding.device_set) > 1 and not a.sharding.is_fully_replicated
                                   for a in jax.tree.leaves(gen.params))
print(json.dumps(out))
"""


def test_sharded_decoding_over_a_mesh_matches_one_device():
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["mesh"] == out["one"] and out["param_sharded"]


def test_greedy_choice_is_the_first_maximum_as_argmax_gives_it():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 37)).astype(np.float32)
    logits[1, [3, 20]] = 9.0  # a tie: the first index wins, as in jnp.argmax
    logits[2, :] = -4.0  # all equal
    logits[3, -1] = 50.0  # the last entry
    chosen = decoding.first_argmax(jnp.asarray(logits))
    np.testing.assert_array_equal(chosen, np.argmax(logits, axis=-1))
    assert chosen.dtype == jnp.int32 and list(chosen[1:4]) == [3, 0, 36]
