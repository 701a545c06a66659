"""Damaged checkpoints and failed saves.

Each damage kind (a missing, truncated or corrupted array file; a missing commit marker; a save that
never finished) makes reading commands stop with one line naming the step and an intact `--step`,
and makes training move the step aside, warn, and resume from the newest intact step with the losses
of an uninterrupted run. A save that fails for lack of space (a real size-limited tmpfs where the
machine allows mounting one, and an injected ENOSPC everywhere) is one line; the previous checkpoint
stays intact and a rerun resumes from it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--gin_file=smoke.gin", "--no_progress", "--gin.TrainConfig.log_every=1",
         "--gin.CheckpointConfig.save_interval_steps=2", "--gin.CheckpointConfig.max_to_keep=3"]  # fmt: skip


def run_cli(*args, env=None, code: str | None = None):
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "lowres.cli", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)


def _env(cache_dir):
    return dict(os.environ, LOWRES_CACHE_DIR=str(cache_dir))


def _losses(model_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """An uninterrupted 6-step run, and a 4-step run of the same settings (checkpoints 2 and 4)."""
    base = tmp_path_factory.mktemp("faults")
    full = run_cli("train", *SMALL, f"--model_dir={base / 'full'}", "--gin.TrainConfig.num_steps=6",
                   env=_env(cache_dir))  # fmt: skip
    assert full.returncode == 0, full.stderr[-2000:]
    four = run_cli("train", *SMALL, f"--model_dir={base / 'four'}", "--gin.TrainConfig.num_steps=4",
                   env=_env(cache_dir))  # fmt: skip
    assert four.returncode == 0, four.stderr[-2000:]
    assert (base / "four" / "checkpoints" / "4" / "lowres_integrity.json").is_file()
    return base


def _array_files(step_dir: Path) -> list[Path]:
    files = sorted((step_dir / "params").glob("ocdbt.process_0/d/*"))
    assert files, list(step_dir.rglob("*"))
    return files


def _missing(step: Path):
    _array_files(step)[0].unlink()


def _truncated(step: Path):
    path = _array_files(step)[0]
    os.truncate(path, path.stat().st_size // 2)


def _corrupted(step: Path):
    path = _array_files(step)[0]
    with open(path, "r+b") as handle:  # same size, different bytes: Orbax alone restores these as weights
        handle.seek(path.stat().st_size // 2)
        handle.write(bytes(64))


def _no_marker(step: Path):
    (step / "commit_success.txt").unlink()


def _unfinished(step: Path):  # killed before the marker and the integrity record were written
    (step / "commit_success.txt").unlink()
    (step / "lowres_integrity.json").unlink()


DAMAGE = {"missing": _missing, "truncated": _truncated, "corrupted": _corrupted, "no_marker": _no_marker,
          "unfinished": _unfinished}  # fmt: skip


# Resuming past a damaged step is one code path per family: a step whose files fail the integrity record
# (missing, truncated, corrupted) and a step without its commit marker (no_marker, unfinished). Training
# resumes past one of each; every kind is checked through the readers.
RETRAINED = ("corrupted", "unfinished")


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_checkpoint_is_named_by_readers_and_skipped_by_training(kind, reference, tmp_path, cache_dir, capsys):
    from lowres.cli import main

    run = tmp_path / "run"
    shutil.copytree(reference / "four", run)
    DAMAGE[kind](run / "checkpoints" / "4")

    # The reader (in-process: the same code path as the command, without a second interpreter's start-up).
    assert main(["export", "hf", f"--model_dir={run}", f"--output={tmp_path / 'hf'}"]) == 2
    stderr = capsys.readouterr().err
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("lowres: error: checkpoint 4 in ") and "--step=2" in line, line
    assert "internal error" not in stderr and len(line) < 600, line
    if kind not in RETRAINED:
        return

    resumed = run_cli("train", *SMALL, f"--model_dir={run}", "--gin.TrainConfig.num_steps=6", env=_env(cache_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "checkpoint 4 in" in resumed.stderr and "is damaged" in resumed.stderr, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout and "/2" in resumed.stdout.split("resumed from")[1].split()[0]
    assert (run / "checkpoints" / "4.damaged").is_dir()  # kept for inspection, out of Orbax's way
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())[-1] == 6
    assert _losses(run) == _losses(reference / "full")  # steps 3-4 retrained from step 2, identically


INJECT_ENOSPC = textwrap.dedent("""
    import sys
    import orbax.checkpoint as ocp
    from lowres import cli
    save = ocp.CheckpointManager.save
    def failing(self, step, *args, **kwargs):
        if step == 4:  # what TensorStore raises when the disk is full
            raise ValueError("RESOURCE_EXHAUSTED: Failed writing: No space left on device [os_error_code='28']")
        return save(self, step, *args, **kwargs)
    ocp.CheckpointManager.save = failing
    sys.exit(cli.main(sys.argv[1:]))
""")


def _mount_tmpfs(path: Path, size_kb: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("how", ["injected", "tmpfs"])
def test_a_full_disk_during_a_save_is_one_line_and_the_rerun_resumes(how, reference, tmp_path, cache_dir):
    disk = tmp_path / "disk"
    if how == "tmpfs":
        checkpoint = sum(p.stat().st_size for p in (reference / "four" / "checkpoints" / "2").rglob("*") if p.is_file())
        if not _mount_tmpfs(disk, 16 * 1024):
            pytest.skip("this machine does not allow mounting a tmpfs (needs root); the injected case covers it")
        # Leave room for the run's files and one checkpoint, not two.
        filler = disk / "filler"
        free = shutil.disk_usage(disk).free
        filler.write_bytes(bytes(max(0, free - int(1.6 * checkpoint) - 600_000)))
    run = disk / "run"
    try:
        first = run_cli("train", *SMALL, f"--model_dir={run}", "--gin.TrainConfig.num_steps=6", env=_env(cache_dir),
                        code=INJECT_ENOSPC if how == "injected" else None)  # fmt: skip
        assert first.returncode == 2, first.stderr[-3000:]
        # lowres's line. On a real full disk, Orbax's async writer can still print an asyncio shutdown error
        # ("RuntimeError: Event loop is closed") after lowres has returned; seen once in CI, left to Orbax.
        line = [text for text in first.stderr.strip().splitlines() if text.startswith("lowres: ")][-1]
        assert line.startswith("lowres: error: saving a checkpoint in ") and "No space left on device" in line, line
        assert "the newest intact checkpoint is 2" in line, line
        if how == "tmpfs":
            filler.unlink()  # the user frees space
        again = run_cli("train", *SMALL, f"--model_dir={run}", "--gin.TrainConfig.num_steps=6", env=_env(cache_dir))
        assert again.returncode == 0, again.stderr[-3000:]
        assert "resumed from" in again.stdout and again.stdout.split("resumed from")[1].split()[0].endswith("/2")
        assert _losses(run) == _losses(reference / "full")
    finally:
        if how == "tmpfs":
            subprocess.run(["umount", str(disk)], capture_output=True)


@pytest.mark.parametrize("error, named", [
    (OSError(28, "No space left on device"), "No space left on device"),
    (OSError(30, "Read-only file system"), "Read-only file system"),
    (PermissionError(13, "Permission denied"), "Permission denied"),
    (ValueError("RESOURCE_EXHAUSTED: Failed writing [os_error_code='122']"), "quota"),
    (ValueError("INVALID_ARGUMENT: shapes differ"), None),
])  # fmt: skip
def test_write_failures_are_recognised_by_their_os_error(tmp_path, error, named):
    from lowres.checkpoints.store import CheckpointStore

    store = CheckpointStore(tmp_path / "checkpoints")
    try:
        failure = store.write_failure(error)
    finally:
        store.close()
    if named is None:
        assert failure is None  # not a disk problem: reported as what it is
    else:
        assert named.lower() in str(failure).lower() and "the newest intact checkpoint is none" in str(failure)


@pytest.mark.slow
def test_fault_soak_script_runs_one_trial(tmp_path, cache_dir, monkeypatch):
    """benchmarks/fault_soak.py at its smallest: a reference run and one kill-and-restart, compared bitwise."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setenv("LOWRES_CACHE_DIR", str(cache_dir))
    import fault_soak

    output = tmp_path / "soak.json"
    code = fault_soak.main(["--kills", "1", "--steps", "12", "--workdir", str(tmp_path / "work"),
                            "--output", str(output)])  # fmt: skip
    record = json.loads(output.read_text())
    assert code == 0 and record["summary"] == "1 of 1 resumed identically", record
    assert record["trials"][0]["mode"] == "random" and record["trials"][0]["identical"]
