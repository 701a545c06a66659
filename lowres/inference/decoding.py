"""Compiled search over a next-token function: greedy, sampling (temperature, top-k, top-p), beam search
(t5x brevity penalty, early stopping) and contrastive search.

Every search is one `lax.while_loop` over decode steps and knows nothing of models: it sees the first
next-token logits, the hidden features of the context (contrastive search only), an opaque state (a KV
cache) and a `Stepper` that feeds tokens. Output rows hold the generated ids, EOS included, then 0s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import gin
import jax
import jax.numpy as jnp
from lowres.config_fields import at_least, between, greater_than, one_of, validated

NEG_INF = -1.0e9  # finite, so that -inf arithmetic never makes NaNs in scores
VALID = -1.0e6  # beam scores below this come from NEG_INF-seeded (empty) beams
METHODS = ("greedy", "sample", "beam", "contrastive")


@gin.configurable
@validated(
    method=one_of(*METHODS), max_length=at_least(1), beam_size=at_least(1), brevity_alpha=at_least(0.0),
    temperature=greater_than(0.0), top_k=at_least(0), top_p=between(0.0, 1.0, low_open=True),
    contrastive_k=at_least(1), penalty_alpha=between(0.0, 1.0), seed=at_least(0),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How to decode; `max_length` counts generated tokens, EOS included."""

    method: str = "greedy"
    max_length: int = 64
    beam_size: int = 4
    brevity_alpha: float = 0.6  # t5x: score = log p / ((5 + length) / 6) ** alpha
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0  # 1 = no nucleus filter
    contrastive_k: int = 4
    penalty_alpha: float = 0.6  # contrastive degeneration penalty; 0 is greedy
    seed: int = 0


class Stepper(NamedTuple):
    """The model as search sees it.

    step(tokens [N], state, i) -> (logits [N, V], features [N, E], state): feeds the i-th generated token.
    gather(state, rows [M]) -> state with those batch rows (beam reordering, candidate expansion).
    """

    step: Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, jax.Array, Any]]
    gather: Callable[[Any, jax.Array], Any]


class Decoded(NamedTuple):
    tokens: jax.Array  # int32 [B, max_length], EOS included, 0 after it
    scores: jax.Array  # float32 [B]: summed log p (beam: divided by the brevity penalty)
    lengths: jax.Array  # int32 [B]: generated tokens, EOS included


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Logits with every token outside the top-k and outside the top-p nucleus set to NEG_INF."""
    if top_k:
        kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][..., -1:]
        logits = jnp.where(logits >= kth, logits, NEG_INF)
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        keep = (jnp.cumsum(probs, axis=-1) - probs) < top_p  # tokens needed to reach mass top_p
        threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
        logits = jnp.where(logits >= threshold, logits, NEG_INF)
    return logits


def first_argmax(logits: jax.Array) -> jax.Array:
    """jnp.argmax over the last axis (the first index of the maximum) as two plain reductions: XLA:CPU
    runs argmax's paired (value, index) reduction as one slow loop fusion: 8 ms of an 85 ms batch-32
    quickstart decode in the profile, where this form no longer showed among the costly ops."""
    best = jnp.max(logits, axis=-1, keepdims=True)
    ids = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    return jnp.min(jnp.where(logits == best, ids, logits.shape[-1]), axis=-1)


def token_chooser(config: DecodeConfig) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """(logits [B, V], key) -> tokens [B]: argmax for greedy, a filtered tempered draw for sampling."""
    if config.method != "sample":
        return lambda logits, key: first_argmax(logits)

    def sample(logits, key):
        filtered = filter_logits(logits / config.temperature, config.top_k, config.top_p)
        return jax.random.categorical(key, filtered, axis=-1).astype(jnp.int32)

    return sample


def _lengths(tokens: jax.Array, eos_id: int) -> jax.Array:
    """Generated length per row: up to the first EOS, or the whole row."""
    is_eos = tokens == eos_id
    first = jnp.argmax(is_eos, axis=-1) + 1
    return jnp.where(is_eos.any(axis=-1), first, tokens.shape[-1]).astype(jnp.int32)


def sample_search(
    logits: jax.Array, state: Any, stepper: Stepper, choose, max_length: int, eos_id: int, key: jax.Array
) -> Decoded:
    """Greedy or ancestral sampling: one token per row and step until every row emitted EOS."""
    batch = logits.shape[0]

    def cond(carry):
        i, _, _, _, done, _, _ = carry
        return (i < max_length) & ~jnp.all(done)

    def body(carry):
        i, tokens, logits, state, done, total, key = carry
        key, sub = jax.random.split(key)
        token = jnp.where(done, 0, choose(logits, sub))
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], axis=-1)[:, 0]
        total = total + jnp.where(done, 0.0, logp)
        tokens = tokens.at[:, i].set(token)
        done = done | (token == eos_id)
        logits, _, state = stepper.step(token, state, i)
        return i + 1, tokens, logits, state, done, total, key

    init = (
        jnp.zeros((), jnp.int32), jnp.zeros((batch, max_length), jnp.int32), logits, state,
        jnp.zeros((batch,), bool), jnp.zeros((batch,), jnp.float32), key,
    )  # fmt: skip
    _, tokens, _, _, _, total, _ = jax.lax.while_loop(cond, body, init)
    return Decoded(tokens, total, _lengths(tokens, eos_id))


def brevity_penalty(alpha: float, length) -> jax.Array:
    """t5x's length normalisation ((5 + length) / 6) ** alpha."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def beam_search(
    logits: jax.Array, state: Any, stepper: Stepper, beam_size: int, alpha: float, max_length: int, eos_id: int
) -> Decoded:
    """t5x-style beam search: 2K candidates per step split into finished (EOS) and alive beams; stops
    once no alive beam, even at max length, could beat the worst of K finished ones."""
    batch, vocab = logits.shape
    k = beam_size
    rows = jnp.repeat(jnp.arange(batch), k)
    state, logits = stepper.gather(state, rows), logits[rows]
    alive_logp = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch, 1))
    seqs = jnp.zeros((batch, k, max_length), jnp.int32)
    finished_scores = jnp.full((batch, k), NEG_INF, jnp.float32)
    best_possible = 1.0 / brevity_penalty(alpha, max_length)

    def take(a, index):  # a [B, N, ...], index [B, M] -> [B, M, ...]
        return jnp.take_along_axis(a, index.reshape(index.shape + (1,) * (a.ndim - 2)), axis=1)

    def cond(carry):
        i, _, alive_logp, _, _, finished_scores, _ = carry
        worst_finished = jnp.min(finished_scores, axis=1)
        unbeatable = worst_finished > jnp.max(alive_logp, axis=1) * best_possible
        # a row with fewer than K finished beams has an invalid worst score and keeps searching
        return (i < max_length) & ~jnp.all(unbeatable & (worst_finished > VALID))

    def body(carry):
        i, alive_seqs, alive_logp, logits, state, finished_scores, finished_seqs = carry
        logp = jax.nn.log_softmax(logits).reshape(batch, k, vocab)
        candidates = (alive_logp[:, :, None] + logp).reshape(batch, k * vocab)
        top_logp, top_index = jax.lax.top_k(candidates, 2 * k)
        beam, token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
        cand_seqs = take(alive_seqs, beam).at[:, :, i].set(token)
        is_eos = token == eos_id
        new_scores = jnp.where(is_eos & (top_logp > VALID), top_logp / brevity_penalty(alpha, i + 1), NEG_INF)
        finished_scores, pick = jax.lax.top_k(jnp.concatenate([finished_scores, new_scores], axis=1), k)
        finished_seqs = take(jnp.concatenate([finished_seqs, cand_seqs], axis=1), pick)
        alive_logp, pick = jax.lax.top_k(jnp.where(is_eos, NEG_INF, top_logp), k)
        alive_seqs = take(cand_seqs, pick)
        parent = (jnp.arange(batch)[:, None] * k + take(beam, pick)).reshape(-1)
        logits, _, state = stepper.step(take(token, pick).reshape(-1), stepper.gather(state, parent), i)
        return i + 1, alive_seqs, alive_logp, logits, state, finished_scores, finished_seqs

    init = (jnp.zeros((), jnp.int32), seqs, alive_logp, logits, state, finished_scores, seqs)
    _, alive_seqs, alive_logp, _, _, finished_scores, finished_seqs = jax.lax.while_loop(cond, body, init)
    has_finished = finished_scores[:, 0] > VALID
    tokens = jnp.where(has_finished[:, None], finished_seqs[:, 0], alive_seqs[:, 0])
    scores = jnp.where(has_finished, finished_scores[:, 0], alive_logp[:, 0] * best_possible)
    return Decoded(tokens, scores, _lengths(tokens, eos_id))


def contrastive_search(
    logits: jax.Array,
    context: jax.Array,
    context_mask: jax.Array,
    state: Any,
    stepper: Stepper,
    top_k: int,
    penalty_alpha: float,
    max_length: int,
    eos_id: int,
) -> Decoded:
    """Contrastive search (Su et al. 2022): among the top-k tokens pick argmax of
    (1 - alpha) p(v) - alpha max_j cos(h_v, h_j), h_j the features of every earlier position."""
    batch, vocab = logits.shape
    k = min(top_k, vocab)
    ctx_len = context.shape[1]
    unit = lambda h: h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-8)  # noqa: E731
    context = jnp.concatenate(
        [unit(context.astype(jnp.float32)), jnp.zeros((batch, max_length, context.shape[2]), jnp.float32)], axis=1
    )
    context_mask = jnp.concatenate([context_mask.astype(bool), jnp.zeros((batch, max_length), bool)], axis=1)

    def cond(carry):
        return (carry[0] < max_length) & ~jnp.all(carry[4])

    def body(carry):
        i, tokens, logits, state, done, total, context, context_mask = carry
        log_probs = jax.nn.log_softmax(logits)
        top_logp, top_token = jax.lax.top_k(log_probs, k)
        rows = jnp.repeat(jnp.arange(batch), k)
        cand_logits, cand_features, cand_state = stepper.step(
            top_token.reshape(-1), stepper.gather(state, rows), i
        )
        cand_features = unit(cand_features.astype(jnp.float32)).reshape(batch, k, -1)
        similarity = jnp.einsum("bke,bce->bkc", cand_features, context)
        degeneration = jnp.max(jnp.where(context_mask[:, None, :], similarity, -1.0), axis=-1)
        score = (1.0 - penalty_alpha) * jnp.exp(top_logp) - penalty_alpha * degeneration
        best = jnp.argmax(score, axis=-1)
        token = jnp.where(done, 0, jnp.take_along_axis(top_token, best[:, None], axis=1)[:, 0])
        total = total + jnp.where(done, 0.0, jnp.take_along_axis(top_logp, best[:, None], axis=1)[:, 0])
        tokens = tokens.at[:, i].set(token)
        chosen = jnp.arange(batch) * k + best
        context = context.at[:, ctx_len + i].set(cand_features[jnp.arange(batch), best])
        context_mask = context_mask.at[:, ctx_len + i].set(True)
        done = done | (token == eos_id)
        return i + 1, tokens, cand_logits[chosen], stepper.gather(cand_state, chosen), done, total, context, context_mask

    init = (
        jnp.zeros((), jnp.int32), jnp.zeros((batch, max_length), jnp.int32), logits, state,
        jnp.zeros((batch,), bool), jnp.zeros((batch,), jnp.float32), context, context_mask,
    )  # fmt: skip
    _, tokens, _, _, _, total, _, _ = jax.lax.while_loop(cond, body, init)
    return Decoded(tokens, total, _lengths(tokens, eos_id))


def search(
    config: DecodeConfig,
    logits: jax.Array,
    context: jax.Array,
    context_mask: jax.Array,
    state: Any,
    stepper: Stepper,
    eos_id: int,
    key: jax.Array | None = None,
) -> Decoded:
    """Runs the search `config.method` names from the first next-token logits [B, V]."""
    if config.method == "beam":
        return beam_search(logits, state, stepper, config.beam_size, config.brevity_alpha, config.max_length, eos_id)
    if config.method == "contrastive":
        return contrastive_search(
            logits, context, context_mask, state, stepper, config.contrastive_k, config.penalty_alpha,
            config.max_length, eos_id,
        )  # fmt: skip
    key = jax.random.key(config.seed) if key is None else key
    return sample_search(logits, state, stepper, token_chooser(config), config.max_length, eos_id, key)
