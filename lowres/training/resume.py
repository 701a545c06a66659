"""What a checkpoint must carry for an exact resume, and the checks made when resuming.

The data position is the number of batches each host has consumed plus a fingerprint of the
batch it would train on next; the stream is a pure function of the step, so a resumed host opens
it at that position and verifies the fingerprint before training on. The vocabulary is fingerprinted (SentencePiece
training is not deterministic across runs, so a rebuilt vocabulary would silently change the
token ids) and the operative gin config is stored verbatim.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from lowres.errors import ConfigError, DataError


def batch_fingerprint(batch: Mapping[str, np.ndarray]) -> str:
    """A short hash of a host-local batch (keys, shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for key in sorted(batch):
        value = np.ascontiguousarray(batch[key])
        digest.update(f"{key}:{value.dtype}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def file_fingerprint(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def gather_fingerprints(fingerprint: str) -> list[str]:
    """Every host's fingerprint, in process order (a collective when there are several hosts)."""
    if jax.process_count() == 1:
        return [fingerprint]
    from jax.experimental import multihost_utils

    words = np.frombuffer(bytes.fromhex(fingerprint), dtype=np.uint32)
    gathered = np.asarray(multihost_utils.process_allgather(words))
    return [row.astype(np.uint32).tobytes().hex() for row in gathered.reshape(jax.process_count(), -1)]


def data_identity(data_config: Any, mixture: str, process_count: int) -> dict[str, Any]:
    """Everything that decides the batch stream; a resume with any of it changed is refused."""
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(data_config).items()}
    return {"config": config, "mixture": mixture, "process_count": process_count}


def check_resume(metadata: Mapping[str, Any], *, vocabulary_sha256: str, data: Mapping[str, Any], where: str) -> None:
    """Refuses to resume when the vocabulary or the data stream differs from the checkpoint's."""
    saved_vocab = metadata.get("vocabulary_sha256")
    if saved_vocab and saved_vocab != vocabulary_sha256:
        raise ConfigError(
            f"{where}: the vocabulary in the model directory is not the one this checkpoint was trained with "
            "(sha256 differs); restore the original vocabulary file or train in a new --model_dir"
        )
    saved = metadata.get("data")
    if not saved:
        return
    problems = []
    if saved.get("mixture") != data["mixture"]:
        problems.append(f"mixture {saved.get('mixture')!r} -> {data['mixture']!r}")
    if "stream" in saved and saved["stream"] != data.get("stream"):
        problems.append(f"batch stream {saved['stream']} -> {data.get('stream')} (StreamConfig, MixtureSchedule, "
                        "LearnedMixingConfig)")
    if saved.get("process_count") != data["process_count"]:
        problems.append(f"hosts {saved.get('process_count')} -> {data['process_count']}")
    for key, value in data["config"].items():
        if key in saved.get("config", {}) and saved["config"][key] != value:
            problems.append(f"DataConfig.{key} {saved['config'][key]!r} -> {value!r}")
    if problems:
        raise ConfigError(
            f"{where}: the data stream differs from the checkpoint's ({'; '.join(problems)}), so resuming would "
            "not see the examples the run would have seen; restore those settings or start a new --model_dir "
            "(initialising from this one)"
        )


def check_first(batch: Mapping[str, np.ndarray], expected: str | None, step: int, where: str) -> None:
    """Checks the resumed stream's first batch (step `step`) against the fingerprint saved for it."""
    if expected is not None and batch_fingerprint(batch) != expected:
        raise DataError(
            f"{where}: the data stream opened at step {step} does not match the checkpoint "
            f"(fingerprint {batch_fingerprint(batch)} != {expected}); the input pipeline is not deterministic "
            "or its inputs changed"
        )


def replay_to(stream: Iterator[Mapping[str, np.ndarray]], expected: str | None, step: int, where: str):
    """Consumes the stream's first batch (the checkpoint's last) and checks it against `expected`
    (checkpoints that predate `check_first`'s next-batch fingerprint)."""
    last = next(stream)
    if expected is not None and batch_fingerprint(last) != expected:
        raise DataError(
            f"{where}: the data stream replayed to step {step} does not match the checkpoint "
            f"(fingerprint {batch_fingerprint(last)} != {expected}); the input pipeline is not deterministic "
            "or its inputs changed"
        )
    return stream
