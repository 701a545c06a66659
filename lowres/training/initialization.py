"""Initialise a new run from another run's checkpoint: continued pretraining, renamed or added
parameters (architecture changes), with or without the old optimiser state.

Parameters are matched by name (`a/b/c` paths of the param dict) after applying `mapping`, a
list of (regex, replacement) pairs that turn a new name into the checkpoint's name. Parameters
the checkpoint lacks keep their fresh initialisation and are listed; a shape mismatch is an
error naming every mismatching parameter (resize vocabularies first with lowres.models.surgery).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import gin
import jax
import numpy as np

from lowres.checkpoints.store import CheckpointStore
from lowres.training.step import TrainState, leaf_names
from lowres.errors import ConfigError, MissingFileError


@gin.configurable
@dataclasses.dataclass(frozen=True)
class InitConfig:
    """`checkpoint`: a model directory (its latest or `step`) or a checkpoints directory."""

    checkpoint: str | None = None
    step: int | None = None
    mapping: tuple[tuple[str, str], ...] = ()
    optimizer_state: bool = False


def _store(path: Path) -> CheckpointStore:
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not directory.is_dir():
        raise MissingFileError(f"InitConfig.checkpoint={str(path)!r}: no such directory")
    return CheckpointStore(directory, read_only=True)


def source_name(name: str, mapping) -> str:
    for pattern, replacement in mapping:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


def initialize_from(config: InitConfig, state: TrainState) -> tuple[TrainState, dict[str, Any]]:
    """`state` with its parameters (and optionally optimiser state) taken from the checkpoint."""
    store = _store(Path(config.checkpoint))
    try:
        step = config.step if config.step is not None else store.latest_step()
        if step is None:
            raise MissingFileError(f"InitConfig.checkpoint={config.checkpoint!r} holds no checkpoint")
        import orbax.checkpoint as ocp

        items = {"params": ocp.args.StandardRestore()}
        if config.optimizer_state:
            items["opt_state"] = ocp.args.StandardRestore()
        restored = store.manager.restore(step, args=ocp.args.Composite(**items))
    finally:
        store.close()

    old = dict(zip(leaf_names(restored["params"]), jax.tree.leaves(restored["params"])))
    new_leaves, treedef = jax.tree.flatten(state.params)
    names = leaf_names(state.params)
    loaded, fresh, mismatches, values = [], [], [], []
    for name, leaf in zip(names, new_leaves):
        source = source_name(name, config.mapping)
        if source not in old:
            fresh.append(name)
            values.append(leaf)
            continue
        value = old[source]
        if tuple(value.shape) != tuple(leaf.shape):
            mismatches.append(f"{name} (checkpoint {source}): checkpoint {tuple(value.shape)} vs model {tuple(leaf.shape)}")
            continue
        loaded.append(name)
        values.append(jax.device_put(np.asarray(value).astype(leaf.dtype), leaf.sharding))
    if mismatches:
        raise ConfigError(
            f"InitConfig.checkpoint={config.checkpoint!r} (step {step}) does not fit this model: "
            + "; ".join(mismatches)
            + ". Map names with InitConfig.mapping, or resize vocabulary matrices with lowres.models.surgery first"
        )
    if not loaded:
        raise ConfigError(f"InitConfig.checkpoint={config.checkpoint!r}: no parameter name matches this model")
    params = jax.tree.unflatten(treedef, values)
    opt_state = state.opt_state
    if config.optimizer_state:
        if fresh or config.mapping:
            raise ConfigError("InitConfig.optimizer_state=True needs the same parameters under the same names")
        old_opt = jax.tree.leaves(restored["opt_state"])
        new_opt, opt_def = jax.tree.flatten(state.opt_state)
        if len(old_opt) != len(new_opt) or any(np.shape(a) != np.shape(b) for a, b in zip(old_opt, new_opt)):
            raise ConfigError("InitConfig.optimizer_state=True: the checkpoint's optimiser state has another structure "
                             "(a different optimiser?); set optimizer_state=False")
        opt_state = jax.tree.unflatten(
            opt_def, [jax.device_put(np.asarray(a).astype(b.dtype), b.sharding) for a, b in zip(old_opt, new_opt)]
        )
    report = {"checkpoint": str(config.checkpoint), "step": step, "loaded": len(loaded), "fresh": fresh,
              "optimizer_state": config.optimizer_state}
    return TrainState(step=state.step, params=params, opt_state=opt_state), report
