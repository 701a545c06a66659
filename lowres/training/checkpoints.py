"""Orbax checkpoints: parameters, optimiser state and run metadata saved as separate items.

Separate items let evaluation restore only `params`. Orbax writes each step to a temporary
directory and renames it when complete, so a kill mid-save leaves the previous step usable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gin
import orbax.checkpoint as ocp


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    save_interval_steps: int = 100
    max_to_keep: int = 3
    async_save: bool = True


class CheckpointStore:
    """A thin owner of an Orbax CheckpointManager with lowres' item layout."""

    ITEMS = ("params", "opt_state", "metadata")

    def __init__(self, directory: str | Path, config: CheckpointConfig = CheckpointConfig(), read_only: bool = False):
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=config.save_interval_steps,
            max_to_keep=config.max_to_keep,
            enable_async_checkpointing=config.async_save and not read_only,
            create=not read_only,
            read_only=read_only,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=self.ITEMS)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, params: Any, opt_state: Any, metadata: dict, force: bool = False) -> bool:
        """Saves when the interval says so (or `force`); returns whether a save started."""
        return self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(params),
                opt_state=ocp.args.StandardSave(opt_state),
                metadata=ocp.args.JsonSave(metadata),
            ),
            force=force,
        )

    def restore(self, step: int | None, abstract_params: Any, abstract_opt_state: Any | None = None) -> dict:
        """Restores `params` (and `opt_state` when its abstract tree is given) plus metadata.

        Abstract trees are `jax.ShapeDtypeStruct`s carrying shardings, so arrays land where the
        step expects them.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint found under {self.directory}")
        items = {
            "params": ocp.args.StandardRestore(abstract_params),
            "metadata": ocp.args.JsonRestore(),
        }
        if abstract_opt_state is not None:
            items["opt_state"] = ocp.args.StandardRestore(abstract_opt_state)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return {"step": step, **{k: restored[k] for k in items}}

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()

