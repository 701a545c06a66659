"""`lowres sweep`: spec expansion, claims, and a real sweep of tiny runs that is failed, skipped,
killed, resumed and handed to SLURM / a commands file."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowres.cli import main
from lowres.errors import ConfigError
from lowres.sweeps import state
from lowres.sweeps.spec import expand, gin_literal, load_spec

ROOT = Path(__file__).resolve().parents[1]


def write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_expansion_is_arms_by_grid_by_zip_by_seeds_with_stable_names_and_hashes(tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml", """
gin_files: [smoke.gin]
bindings: {TrainConfig.num_steps: 4}
arms:
  - name: a
  - name: b
    gin_files: [objectives/causal_lm.gin]
    bindings: {DataConfig.objective: '@causal'}
grid:
  OptimizerConfig.learning_rate: [1.0e-3, 3.0e-3]
zip:
  ModelConfig.preset: [tiny, mini]
  DataConfig.batch_size: [8, 4]
seeds: [0, 1]
"""))
    runs = expand(spec)
    assert len(runs) == 2 * 2 * 2 * 2
    assert [r.index for r in runs] == list(range(16))
    assert runs[0].name == "a-learning_rate=0.001-preset=tiny-batch_size=8-s0"
    b = next(r for r in runs if r.swept["arm"] == "b")
    assert b.gin_files == ("smoke.gin", "objectives/causal_lm.gin")
    assert "--gin.DataConfig.objective=@causal" in b.gin_arguments()  # references stay unquoted
    assert "--gin.ModelConfig.preset='tiny'" in runs[0].gin_arguments()
    zipped = {(r.bindings["ModelConfig.preset"], r.bindings["DataConfig.batch_size"]) for r in runs}
    assert zipped == {("tiny", 8), ("mini", 4)}
    assert len({r.run_hash for r in runs}) == 16
    assert [r.run_hash for r in expand(load_spec(tmp_path / "s.yaml"))] == [r.run_hash for r in runs]
    assert gin_literal(["eng", "pan"]) == "['eng', 'pan']" and gin_literal(True) == "True"
    both = load_spec(write_spec(tmp_path / "t.yaml", "seeds: [3]\nseed_binding: [TrainConfig.seed, DataConfig.seed]\n"
                                                     "grid: {OptimizerConfig.learning_rate: [1e-3]}\n"))
    (run,) = expand(both)
    # YAML 1.1 reads 1e-3 as a string; the sweep binds the number.
    assert run.bindings == {"OptimizerConfig.learning_rate": 0.001, "TrainConfig.seed": 3, "DataConfig.seed": 3}


@pytest.mark.parametrize("text, message", [
    ("grid: {A.b: [1]}\nbogus: 1\n", "unknown key.*bogus"),
    ("zip: {A.b: [1, 2], A.c: [1]}\n", "zip lists must have one length"),
    ("grid: {A.b: [1, 2]}\nname: same\n", "gives several runs the name 'same'"),
    ("grid: {A.b: [1, 2]}\nname: '{A.c}'\n", "uses \\{A.c\\}, which the sweep does not vary"),
    ("gin_files: [no_such.gin]\n", "gin file 'no_such.gin' not found"),
    ("seeds: [-1]\n", "seeds must be a list of integers"),
    ("bindings: {A.b: 1}\ngrid: {A.b: [1, 2]}\n", "A.b is both bound"),
])
def test_bad_specs_are_one_line_errors_naming_the_spec(tmp_path, text, message, capsys):
    path = write_spec(tmp_path / "bad.yaml", text)
    with pytest.raises(Exception, match=message):
        expand(load_spec(path))
    assert main(["sweep", str(path), f"--output={tmp_path / 'out'}", "--dry_run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.yaml" in err[0] or "no_such.gin" in err[0]


def test_a_claim_is_exclusive_and_a_dead_holders_claim_is_taken_over(tmp_path):
    first = state.try_claim(tmp_path / "run")
    assert first is not None and state.try_claim(tmp_path / "run") is None
    first.release()
    # A claim left by a process that died (same host): stale, taken over.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "run" / state.CLAIM_FILE).write_text(json.dumps({"host": socket.gethostname(), "pids": [dead.pid]}))
    assert state.run_state(tmp_path / "run") == "pending"
    taken = state.try_claim(tmp_path / "run")
    assert taken is not None
    taken.release()
    # Another host's claim is live while it is touched, stale when older than stale_after_s.
    path = tmp_path / "run" / state.CLAIM_FILE
    path.write_text(json.dumps({"host": "elsewhere", "pids": [1]}))
    assert state.try_claim(tmp_path / "run", stale_after_s=60) is None
    os.utime(path, (time.time() - 120, time.time() - 120))
    assert state.try_claim(tmp_path / "run", stale_after_s=60) is not None


SPEC = """
gin_files: [smoke.gin]
bindings:
  TrainConfig.log_every: 1
  CheckpointConfig.save_interval_steps: 2
  DataConfig.languages: [eng, pan]
  VocabularyConfig.vocab_size: 300
arms:
  - name: short
    bindings: {TrainConfig.num_steps: 2}
  - name: long
    bindings: {TrainConfig.num_steps: 40}
  - name: broken
    bindings: {TrainConfig.num_steps: 2, OptimizerConfig.warmup_steps: -3}
metrics: [loss]
"""


def _sweep(spec: Path, out: Path, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lowres.cli", "sweep", str(spec), f"--output={out}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory, cache_dir):
    """A sweep killed (SIGKILL) while its `long` run trains, after checkpoint 2; a second sweep started
    meanwhile on the same run; then the first rerun. Returns what each step saw."""
    root = tmp_path_factory.mktemp("sweep")
    spec, out = write_spec(root / "spec.yaml", SPEC), root / "out"
    seen = {}
    first = _sweep(spec, out, "--only=long")
    long_dir = state.run_dir(out, "long")
    deadline = time.time() + 240
    while not (long_dir / "checkpoints" / "2").is_dir() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    trainer = json.loads((long_dir / state.CLAIM_FILE).read_text())["pids"][-1]
    os.kill(trainer, signal.SIGSTOP)  # holds the run still while the second sweep looks at it
    second = _sweep(spec, out, "--only=long")
    seen["second_output"], _ = second.communicate(timeout=120)
    seen["second_code"] = second.returncode
    first.send_signal(signal.SIGKILL)
    first.communicate()
    os.kill(trainer, signal.SIGCONT)
    # The trainer hears of its sweep's death (SIGTERM), saves and stops; wait until its claim is dead.
    while state.claim_is_live(long_dir / state.CLAIM_FILE) and time.time() < deadline:
        time.sleep(0.2)
    seen["state_after_kill"] = state.run_state(long_dir)
    seen["steps_after_kill"] = [json.loads(line)["step"] for line in (long_dir / "metrics.jsonl").read_text().splitlines()]
    rerun = _sweep(spec, out, "--parallel=2")
    seen["rerun_output"], _ = rerun.communicate(timeout=400)
    seen["rerun_code"] = rerun.returncode
    return spec, out, seen


def test_a_second_sweep_never_trains_a_run_another_process_holds(killed_sweep):
    _, _, seen = killed_sweep
    assert seen["second_code"] == 0, seen["second_output"]
    assert "long is running in another process; skipped" in seen["second_output"]


def test_a_killed_sweep_resumes_its_run_from_the_checkpoint(killed_sweep):
    _, out, seen = killed_sweep
    assert seen["state_after_kill"] == "interrupted"
    assert 2 <= max(seen["steps_after_kill"]) < 40
    long_dir = state.run_dir(out, "long")
    status = state.read_status(long_dir)
    assert status["state"] == "done" and status["attempts"] == 2
    steps = [json.loads(line)["step"] for line in (long_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 40 and sorted(set(steps)) == list(range(1, 41))
    assert "resuming long" in seen["rerun_output"]


def test_a_failed_run_is_reported_and_left_until_retry(killed_sweep):
    spec, out, seen = killed_sweep
    assert seen["rerun_code"] == 2
    assert "1 run(s) failed (broken)" in seen["rerun_output"]
    status = state.read_status(state.run_dir(out, "broken"))
    assert status["state"] == "failed" and "warmup_steps=-3" in status["error"]
    again = _sweep(spec, out)
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 2 and "0 to train" in output  # done skipped, failed left alone
    assert state.read_status(state.run_dir(out, "broken"))["attempts"] == 1
    assert state.read_status(state.run_dir(out, "short"))["attempts"] == 1


def test_results_table_and_plots_cover_every_run(killed_sweep, capsys):
    _, out, _ = killed_sweep
    rows = {row["run"]: row for row in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"short", "long", "broken"}
    assert rows["long"]["state"] == "done" and rows["long"]["steps"] == "40"
    long_losses = [json.loads(line)["loss"] for line in (state.run_dir(out, "long") / "metrics.jsonl").read_text().splitlines()]
    assert float(rows["long"]["final loss"]) == pytest.approx(long_losses[-1])
    assert float(rows["long"]["best loss"]) == pytest.approx(min(long_losses))
    assert int(rows["short"]["params"]) > 0 and rows["broken"]["state"] == "failed"
    for png in (out / "plots").glob("*.png"):
        png.unlink()
    assert main(["sweep", "results", str(out)]) == 0  # redraws them
    assert (out / "plots" / "curves_loss.png").stat().st_size > 1000
    assert (out / "plots" / "loss_by_arm.png").is_file()
    assert json.loads((out / "results.json").read_text())["runs"][0]["run"] == "short"
    assert main(["sweep", "status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 done, 1 failed" in printed and "warmup_steps=-3" in printed


def test_slurm_array_and_commands_file_go_through_the_same_claims(killed_sweep, tmp_path):
    spec, out, _ = killed_sweep
    # Nothing left: the SLURM array would be empty.
    assert main(["sweep", str(spec), f"--output={out}", "--launcher=slurm", "--dry_run"]) == 2
    assert main(["sweep", str(spec), f"--output={out}", "--launcher=slurm", "--dry_run", "--retry_failed",
                 "--slurm_option=partition=cpu"]) == 0
    script = (out / "slurm_array.sbatch").read_text()
    assert "#SBATCH --array=2%1" in script and "#SBATCH --partition=cpu" in script
    assert subprocess.run(["bash", "-n", str(out / "slurm_array.sbatch")], check=False).returncode == 0
    # An array task for a finished run trains nothing (the claim and status files decide).
    task = subprocess.run(["bash", str(out / "slurm_array.sbatch")], env={**os.environ, "SLURM_ARRAY_TASK_ID": "0"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert task.returncode == 0 and "0 to train" in task.stderr + task.stdout
    assert state.read_status(state.run_dir(out, "short"))["attempts"] == 1
    assert main(["sweep", str(spec), f"--output={out}", "--launcher=commands", "--retry_failed"]) == 0
    lines = (out / "commands.txt").read_text().splitlines()
    assert len(lines) == 1 and "--index=2" in lines[0]


def test_a_changed_spec_cannot_mix_settings_into_finished_runs(killed_sweep, tmp_path):
    _, out, _ = killed_sweep
    changed = write_spec(tmp_path / "changed.yaml", SPEC.replace("num_steps: 40", "num_steps: 8"))
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        from lowres.sweeps.sweep import prepare

        prepare(changed, out)
