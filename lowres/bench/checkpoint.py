"""`lowres bench checkpoint`: Orbax save/restore time and MB/s against a plain file copy of the same bytes.

The checkpoint is the trainer's (CheckpointStore: parameters, AdamW state and metadata, written
synchronously here so the save time is the whole write). The baseline writes the same number of
bytes to one file and copies it with `shutil.copyfile`, in the same run and directory; a second
baseline reads those bytes into memory (what a restore must do at least). Restore and baselines are
timed warm (files written back but still in the page cache, as on resuming soon after a save) and
cold (pages dropped with `posix_fadvise(DONTNEED)` after an fsync, as after a reboot or for a
checkpoint written elsewhere). Timing a read while the kernel still writes back what was just saved
would measure the disk's write-back instead.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lowres.bench import report

TARGET_RESTORE_FRACTION = 0.5


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_back(path: Path, evict: bool = False) -> None:
    """Writes the dirty pages of every file under `path` to disk, so a timed read does not compete
    with write-back of what was just written; with `evict`, also drops them from the page cache (no
    root needed), so the next read comes from the disk."""
    for f in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            if evict:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def drop_from_page_cache(path: Path) -> None:
    """Makes the next read of `path` come from the disk."""
    write_back(path, evict=True)


def _baselines(num_bytes: int, directory: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds to `shutil.copyfile` a `num_bytes` file and to read it into memory, warm and cold."""
    source = directory / "copy-source.bin"
    chunk = np.random.default_rng(0).integers(0, 256, 1 << 24, dtype=np.uint8).tobytes()
    with open(source, "wb") as f:
        left = num_bytes
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    write_back(source)
    times: dict[str, list[float]] = {"copy": [], "copy_cold": [], "read": [], "read_cold": []}
    for i in range(repeats):
        for cold in (False, True):
            suffix = "_cold" if cold else ""
            target = directory / f"copy-{i}.bin"
            if cold:
                drop_from_page_cache(source)
            start = time.perf_counter()
            shutil.copyfile(source, target)
            times["copy" + suffix].append(time.perf_counter() - start)
            target.unlink()
            if cold:
                drop_from_page_cache(source)
            start = time.perf_counter()
            data = np.fromfile(source, dtype=np.uint8)
            times["read" + suffix].append(time.perf_counter() - start)
            del data
    source.unlink()
    return times


def _randomized(state):
    """The state with every float array filled with noise: fresh AdamW moments are zeros, which compress
    to nothing and would flatter the save; a mid-training checkpoint looks like noise."""
    import jax
    import jax.numpy as jnp

    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [
        jax.device_put(jax.random.normal(k, x.shape, x.dtype), x.sharding) if jnp.issubdtype(x.dtype, jnp.floating)
        else x
        for k, x in zip(keys, leaves)
    ]
    return jax.tree.unflatten(treedef, noisy)


def _timed_restore(directory: Path, abstract) -> tuple[float, Any]:
    import jax

    from lowres.checkpoints.store import CheckpointStore

    reader = CheckpointStore(directory, read_only=True)
    start = time.perf_counter()
    restored = reader.restore(1, abstract.params, abstract.opt_state)
    jax.block_until_ready((restored["params"], restored["opt_state"]))
    seconds = time.perf_counter() - start
    reader.close()
    return seconds, restored


def run(preset: str = "gpt2-small", architecture: str = "decoder_only", vocab_size: int = 32000, repeats: int = 3,
        directory: str | Path | None = None, compress: bool = False,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Saves and restores the train state of `preset` `repeats` times; compares with a file copy."""
    import jax

    from lowres.models.architecture import ModelConfig
    from lowres.models import partitioning
    from lowres.checkpoints.store import CheckpointConfig, CheckpointStore
    from lowres.training.optimizer import OptimizerConfig, make_optimizer
    from lowres.training.trainer import create_sharded_state

    arch = ModelConfig(architecture, preset).resolve(vocab_size)
    mesh_config = partitioning.MeshConfig()
    mesh = partitioning.create_mesh(mesh_config)
    optimizer, _ = make_optimizer(OptimizerConfig(), 100)
    sharded = create_sharded_state(arch, optimizer, mesh, mesh_config.rules, seed=0)
    state = _randomized(sharded.state)
    array_bytes = sum(x.nbytes for x in jax.tree.leaves((state.params, state.opt_state)))
    parent = Path(directory) if directory else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lowres-bench-ckpt-", dir=parent) as scratch:
        scratch = Path(scratch)
        save_times, restore_times, cold_times, disk_bytes = [], [], [], 0
        for i in range(repeats):
            config = CheckpointConfig(save_interval_steps=1, async_save=False, compress=compress)
            store = CheckpointStore(scratch / f"run{i}", config)
            start = time.perf_counter()
            store.save(1, state.params, state.opt_state, {"bench": True}, force=True)
            store.wait()
            save_times.append(time.perf_counter() - start)
            store.close()
            disk_bytes = _dir_bytes(scratch / f"run{i}")
            write_back(scratch / f"run{i}")
            seconds, restored = _timed_restore(scratch / f"run{i}", sharded.abstract)
            restore_times.append(seconds)
            del restored
            drop_from_page_cache(scratch / f"run{i}")
            seconds, restored = _timed_restore(scratch / f"run{i}", sharded.abstract)
            cold_times.append(seconds)
            same = jax.tree.map(lambda a, b: bool((np.asarray(a) == np.asarray(b)).all()), restored["params"], state.params)
            if not all(jax.tree.leaves(same)):
                raise AssertionError("restored parameters differ from the saved ones")
            shutil.rmtree(scratch / f"run{i}")
            log(f"[checkpoint {preset}] save {save_times[-1]:.2f}s, restore {restore_times[-1]:.2f}s warm, "
                f"{cold_times[-1]:.2f}s cold ({disk_bytes / 1e6:,.0f} MB) [{i + 1}/{repeats}]")
        base = {k: statistics.median(v) for k, v in _baselines(disk_bytes, scratch, repeats).items()}
    save_s, restore_s, cold_s = (statistics.median(t) for t in (save_times, restore_times, cold_times))
    mb = disk_bytes / 1e6
    rate = {k: mb / v for k, v in base.items()}
    return report.result(
        "checkpoint",
        peak_rss_mb=report.peak_rss_mb(),
        **report.machine_fields(),
        shape=preset,
        architecture=architecture,
        params=arch.num_params(),
        array_mb=array_bytes / 1e6,
        checkpoint_mb=mb,
        save_s=save_s,
        restore_s=restore_s,
        restore_cold_s=cold_s,
        save_mb_per_s=mb / save_s,
        restore_mb_per_s=mb / restore_s,
        restore_cold_mb_per_s=mb / cold_s,
        copy_mb_per_s=rate["copy"],
        copy_s=base["copy"],
        copy_cold_mb_per_s=rate["copy_cold"],
        read_mb_per_s=rate["read"],
        read_cold_mb_per_s=rate["read_cold"],
        restore_fraction_of_copy=(mb / restore_s) / rate["copy"],
        restore_cold_fraction_of_copy=(mb / cold_s) / rate["copy_cold"],
        restore_fraction_of_read=(mb / restore_s) / rate["read"],
        save_fraction_of_copy=(mb / save_s) / rate["copy"],
        target_restore_fraction=TARGET_RESTORE_FRACTION,
        meets_target=(mb / restore_s) / rate["copy"] >= TARGET_RESTORE_FRACTION,
        compress=compress,
        repeats=repeats,
        filesystem_dir=str(parent),
    )


TABLE_COLUMNS = ("shape", "checkpoint_mb", "save_mb_per_s", "restore_mb_per_s", "copy_mb_per_s",
                 "restore_fraction_of_copy", "restore_cold_mb_per_s", "copy_cold_mb_per_s",
                 "restore_cold_fraction_of_copy", "read_mb_per_s")
