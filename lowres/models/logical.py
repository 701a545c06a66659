"""Logical axis names for parameters and activations, resolved to mesh axes by a rules table.

Models only name axes (`embed`, `mlp`, `heads`, ...); the trainer installs the rules and the mesh
(`jax.set_mesh` + `nnx.logical_axis_rules`), so the same model code runs on 1 device or a pod.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax.core import spmd as flax_spmd
from jax.sharding import PartitionSpec
from lowres.errors import ConfigError

# Every logical name a lowres model may use. The rules table must map each of them (to a mesh
# axis or None); `check_rules_cover` enforces it so a typo cannot silently replicate a tensor.
LOGICAL_AXES = (
    "batch",
    "length",
    "embed",
    "mlp",
    "heads",
    "kv_heads",  # key/value heads: fewer than "heads" under grouped-query attention
    "kv",
    "vocab",
    "layers",
    "relpos_buckets",
)


def logical_to_mesh_spec(names: Sequence[str | None], rules=None) -> PartitionSpec:
    """Maps logical axis names to a PartitionSpec under `rules` (default: the active rules).

    A mesh axis goes to the first dimension that claims it: with `batch -> (data, fsdp)` and
    `embed -> fsdp`, an activation [batch, length, embed] is split over (data, fsdp) on batch and
    kept whole along embed, while an `embed` parameter dimension is still split over fsdp.
    """
    rules = flax_spmd.get_logical_axis_rules() if rules is None else rules
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name in names:
        target = table.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        if not axes or used & set(axes):
            spec.append(None)
            continue
        used.update(axes)
        spec.append(target)
    return PartitionSpec(*spec)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Sharding constraint on an activation by logical names; a no-op outside a mesh + rules context."""
    rules = flax_spmd.get_logical_axis_rules()
    mesh = jax.sharding.get_abstract_mesh()
    if not rules or mesh.empty:
        return x
    return jax.lax.with_sharding_constraint(x, logical_to_mesh_spec(names, rules))


def check_rules_cover(rules, names: Sequence[str] = LOGICAL_AXES) -> None:
    """Raises ValueError naming every logical axis the rules table does not map."""
    mapped = {name for name, _ in rules}
    missing = [n for n in names if n not in mapped]
    if missing:
        raise ConfigError(
            f"logical axis rules do not map {missing}; add e.g. ('{missing[0]}', None) to the rules table"
        )
