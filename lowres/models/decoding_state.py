"""Small array helpers the models' decoding starts share (row gathers and per-row positions)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def take_rows(axis: int):
    """A gather(state, rows) that takes `rows` along `axis` of every array in a state."""
    return lambda state, rows: jax.tree.map(lambda a: jnp.take(a, rows, axis=axis), state)


def at_positions(a: jax.Array, index: jax.Array) -> jax.Array:
    """a[b, index[b]] for a [B, T, ...] and index [B]."""
    return jnp.take_along_axis(a, index.reshape((-1,) + (1,) * (a.ndim - 1)), axis=1)[:, 0]


def unembed_position(model, features: jax.Array) -> jax.Array:
    """Logits [B, V] of one position's features [B, E]."""
    return model.unembed(features[:, None])[:, 0]
