"""Device mesh and the logical-axis rules that place parameters, optimiser state and batches on it."""

from __future__ import annotations

import dataclasses
import math

import gin
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lowres.models import logical
from lowres.config_fields import Rule, validated
from lowres.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")

# Data parallel over `data`, parameters and optimiser state split over `fsdp` along `embed`, and
# Megatron-style tensor parallelism over `tensor`. Every name in logical.LOGICAL_AXES is mapped.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),  # grouped-query K/V heads: num_kv_heads must divide by the tensor size
    ("kv", None),
    ("vocab", "tensor"),
    ("layers", None),
    ("relpos_buckets", None),
)


# A mesh axis: a size, or -1 for all the devices the other axes leave.
_AXIS_SIZE = Rule("-1 (all remaining devices) or >= 1", lambda v: v == -1 or v >= 1, (0, -2))


@gin.configurable
@validated(data=_AXIS_SIZE, fsdp=_AXIS_SIZE, tensor=_AXIS_SIZE)
@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh axis sizes; one of them may be -1 to take all remaining devices."""

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    rules: tuple = DEFAULT_RULES

    def shape(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        if sizes.count(-1) > 1:
            raise ConfigError("MeshConfig: at most one of data/fsdp/tensor may be -1")
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if num_devices % known:
                raise ConfigError(f"MeshConfig: {num_devices} devices are not divisible by {known}")
            sizes[sizes.index(-1)] = num_devices // known
        if math.prod(sizes) != num_devices:
            raise ConfigError(
                f"MeshConfig: data*fsdp*tensor = {math.prod(sizes)} but there are {num_devices} devices; "
                "set one axis to -1 to fill the rest"
            )
        return tuple(sizes)  # type: ignore[return-value]


def create_mesh(config: MeshConfig, devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else devices
    logical.check_rules_cover(config.rules)
    shape = config.shape(len(devices))
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES)


def named_sharding(mesh: Mesh, names, rules) -> NamedSharding:
    return NamedSharding(mesh, logical.logical_to_mesh_spec(names, rules))


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
    """Batches are [batch, length] arrays split over the data axes."""
    return named_sharding(mesh, ("batch", "length"), rules)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
