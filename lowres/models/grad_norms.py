"""Per-layer gradient norms, to compare how evenly norm placements (Pre-LN, Mix-LN, LNS) train each depth."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def layer_grad_norms(grads) -> dict[str, jax.Array]:
    """Global L2 norm of each layer's gradients, keyed "<stack path>/<index>" (e.g. "decoder/layers/3").

    A stack is a `layers` node: either one subtree per layer (looped) or arrays with a leading
    layers axis (scanned). Jit-friendly; leaves outside any stack are ignored.
    """
    squares: dict[tuple[str, int], jax.Array] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
        names = [_key_name(k) for k in path]
        if "layers" not in names:
            continue
        at = len(names) - 1 - names[::-1].index("layers")
        stack = "/".join(names[: at + 1])
        leaf = jnp.asarray(leaf, jnp.float32)
        if at + 1 < len(names) and names[at + 1].isdigit():
            per_layer = {int(names[at + 1]): jnp.sum(jnp.square(leaf))}
        else:
            sums = jnp.sum(jnp.square(leaf), axis=tuple(range(1, leaf.ndim)))
            per_layer = {i: sums[i] for i in range(leaf.shape[0])}
        for index, value in per_layer.items():
            squares[stack, index] = squares.get((stack, index), 0.0) + value
    return {f"{stack}/{index}": jnp.sqrt(total) for (stack, index), total in sorted(squares.items())}


def per_layer_grad_norms(grads) -> dict[str, float]:
    """`layer_grad_norms` as Python floats, for logging outside jit."""
    return {name: float(value) for name, value in layer_grad_norms(grads).items()}
