"""What a sweep knows about each run, on disk, so any number of sweep processes (a local pool, SLURM
array tasks, a rerun after a crash) agree without talking to each other:

    OUT/runs/<name>/            the run's --model_dir (lowres train writes checkpoints and metrics here)
    OUT/runs/<name>/sweep_run.json   its outcome: done or failed (exit code, seconds, attempts, hash)
    OUT/runs/<name>/claim.json       held while a process runs it (host, pids, start), created O_EXCL

A claim whose processes are gone (same host), or whose file was not touched for `stale_after_s`
(another host: the holder touches it while the run lives), is stale and may be taken over; the run
then resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from lowres.files import read_json, write_json

RUNS_DIR = "runs"
STATUS_FILE = "sweep_run.json"
CLAIM_FILE = "claim.json"
LOG_FILE = "train.log"
DEFAULT_STALE_AFTER_S = 600.0
STATES = ("done", "running", "failed", "interrupted", "pending")


def run_dir(output: Path, name: str) -> Path:
    return Path(output) / RUNS_DIR / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass
class Claim:
    """A lock on one run, held by this process until `release`."""

    path: Path
    payload: dict[str, Any]

    def add_pid(self, pid: int) -> None:
        """Records the trainer's pid: a claim stays live while the trainer lives, even if its sweep died."""
        self.payload["pids"].append(pid)
        self.path.write_text(json.dumps(self.payload))

    def touch(self) -> None:
        try:
            os.utime(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def claim_is_live(path: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> bool:
    try:
        payload = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    except (json.JSONDecodeError, OSError):
        return time.time() - path.stat().st_mtime < 5.0  # being written right now, else stale
    if payload.get("host") == socket.gethostname():
        return any(_alive(int(pid)) for pid in payload.get("pids", []))
    return age < stale_after_s


def try_claim(directory: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> Claim | None:
    """Claims the run in `directory`, or None if a live process holds it. A stale claim is taken over."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CLAIM_FILE
    payload = {"host": socket.gethostname(), "pids": [os.getpid()], "since": time.time()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if claim_is_live(path, stale_after_s):
                return None
            # Stale: move it aside atomically, so of two processes taking over only one succeeds.
            try:
                os.replace(path, directory / f".{CLAIM_FILE}.stale.{os.getpid()}")
            except FileNotFoundError:
                pass
            for leftover in directory.glob(f".{CLAIM_FILE}.stale.*"):
                leftover.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(payload))
        return Claim(path, payload)
    return None


def read_status(directory: Path) -> dict[str, Any] | None:
    path = directory / STATUS_FILE
    return read_json(path, "sweep run status") if path.is_file() else None


def write_status(directory: Path, **fields: Any) -> None:
    previous = read_status(directory) or {}
    write_json(directory / STATUS_FILE, {**previous, **fields})


def run_state(directory: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> str:
    """done, running (a live claim), failed, interrupted (started, stopped without an outcome) or pending."""
    if claim_is_live(directory / CLAIM_FILE, stale_after_s):
        return "running"
    status = read_status(directory)
    if status and status.get("state") in ("done", "failed"):
        return status["state"]
    if (directory / "checkpoints").is_dir() or (directory / LOG_FILE).is_file():
        return "interrupted"
    return "pending"
