"""Reading and writing the files of a Hugging Face model directory: `config.json`, weights as
safetensors (one file, or shards with `model.safetensors.index.json` above a size threshold).

NumPy only (safetensors' NumPy API): exporting and importing need neither torch nor transformers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lowres.errors import DataError, MissingFileError
from lowres.files import read_json, write_json

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
# transformers' own default shard size for save_pretrained.
DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3


def write_weights(directory: Path, weights: Mapping[str, np.ndarray],
                  max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:  # fmt: skip
    """Writes `weights` (name -> array, in order) as one safetensors file, or as shards of at most
    `max_shard_bytes` (a larger single tensor gets a shard of its own) plus the index file."""
    from safetensors.numpy import save_file

    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, array in weights.items():
        if shards[-1] and size + array.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = array
        size += array.nbytes
    metadata = {"format": "pt"}  # transformers refuses safetensors files without a known format
    if len(shards) == 1:
        save_file(shards[0], directory / WEIGHTS_FILE, metadata=metadata)
        return [directory / WEIGHTS_FILE]
    paths, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        path = directory / f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, path, metadata=metadata)
        weight_map.update({name: path.name for name in shard})
        paths.append(path)
    total = sum(array.nbytes for array in weights.values())
    paths.append(write_json(directory / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map}))
    return paths


def read_weights(directory: Path) -> dict[str, np.ndarray]:
    """Every tensor of an HF directory's safetensors weights (single file or sharded)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if (directory / INDEX_FILE).is_file():
        index = read_json(directory / INDEX_FILE, "safetensors index")
        files = sorted(set(index.get("weight_map", {}).values()))
    elif (directory / WEIGHTS_FILE).is_file():
        files = [WEIGHTS_FILE]
    else:
        bins = sorted(p.name for p in directory.glob("*.bin"))
        hint = f" (it has {bins[0]}: re-save it with safe_serialization=True)" if bins else ""
        raise MissingFileError(f"{directory} has no {WEIGHTS_FILE} or {INDEX_FILE}{hint}")
    weights = {}
    for name in files:
        path = directory / name
        if not path.is_file():
            raise MissingFileError(f"{path} is listed in {directory / INDEX_FILE} but missing")
        try:
            weights.update(load_file(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise DataError(f"{path} is not a readable safetensors file ({error})") from error
    return weights


def read_config(directory: Path) -> dict[str, Any]:
    """An HF directory's config.json."""
    if not directory.is_dir():
        raise MissingFileError(f"{directory}: no such directory (a Hugging Face model directory was expected)")
    config = read_json(directory / CONFIG_FILE, "Hugging Face model config")
    if not isinstance(config, dict):
        raise DataError(f"{directory / CONFIG_FILE} is not a JSON object")
    return config

