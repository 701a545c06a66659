"""Running a sweep's runs: N local `lowres train` processes at a time (the default), or handing them to
a scheduler as a SLURM array or a file of per-run commands. Every path goes through `run_one` or the
same claim files, so a run is never trained twice at once, whoever launches it."""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lowres.errors import UsageError
from lowres.sweeps import state
from lowres.sweeps.spec import Run

log = logging.getLogger("lowres.sweeps")

PR_SET_PDEATHSIG = 1
TOUCH_EVERY_S = 30.0


def train_command(run: Run, model_dir: Path) -> list[str]:
    return [sys.executable, "-m", "lowres.cli", "train", *run.gin_arguments(), f"--model_dir={model_dir}", "--no_progress"]


def core_slots(parallel: int) -> list[list[int]]:
    """The cores each of `parallel` processes may use: this process's cores split evenly (one process
    per slot); with fewer cores than processes, every slot shares all of them."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if len(cores) < parallel:
        return [cores] * parallel
    per = len(cores) // parallel
    return [cores[i * per:(i + 1) * per] for i in range(parallel)]


def thread_environment(threads: int) -> dict[str, str]:
    """Environment that keeps a trainer's thread pools (XLA, TensorFlow's tf.data, OpenMP) to `threads`."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        flags = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    env.update(XLA_FLAGS=flags, OMP_NUM_THREADS=str(threads), TF_NUM_INTRAOP_THREADS=str(threads),
               TF_NUM_INTEROP_THREADS=str(max(1, threads)), TF_CPP_MIN_LOG_LEVEL="3")
    return env


def _child_setup(cores: Sequence[int]) -> Callable[[], None]:
    def setup() -> None:
        if cores and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)
        try:  # Linux: the trainer gets SIGTERM (and saves a checkpoint) if the sweep process dies.
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass

    return setup


def _format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def runs_to_do(output: Path, runs: Sequence[Run], retry_failed: bool, stale_after_s: float) -> list[Run]:
    todo = []
    for run in runs:
        current = state.run_state(state.run_dir(output, run.name), stale_after_s)
        if current == "running":
            log.info("sweep: %s is running in another process; skipped", run.name)
        if current == "done" or current == "running" or (current == "failed" and not retry_failed):
            continue
        todo.append(run)
    return todo


class LocalPool:
    """Trains runs as local subprocesses, `parallel` at a time, each pinned to its share of the cores."""

    def __init__(self, output: Path, parallel: int, stale_after_s: float,
                 on_finish: Callable[[Run, int], None] = lambda run, code: None):
        self.output, self.parallel, self.stale_after_s, self.on_finish = output, parallel, stale_after_s, on_finish
        self.slots = core_slots(parallel)
        self.pinned = len({core for slot in self.slots for core in slot}) >= parallel  # one core or more each

    def run(self, runs: Sequence[Run], retry_failed: bool = False) -> dict[str, int]:
        """Trains every run that is not done (nor failed, unless `retry_failed`), returns name -> exit code."""
        pending = collections.deque(runs)
        active: dict[int, tuple[Run, subprocess.Popen, state.Claim, float]] = {}  # slot -> ...
        codes: dict[str, int] = {}
        durations: list[float] = []
        last_touch = time.time()
        try:
            while pending or active:
                for slot in range(self.parallel):
                    if slot in active or not pending:
                        continue
                    started = self._start(pending, slot, retry_failed)
                    if started:
                        active[slot] = started
                time.sleep(0.2)
                if time.time() - last_touch > TOUCH_EVERY_S:
                    for _, _, claim, _ in active.values():
                        claim.touch()
                    last_touch = time.time()
                for slot, (run, process, claim, began) in list(active.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del active[slot]
                    seconds = time.time() - began
                    durations.append(seconds)
                    self._finish(run, code, seconds, claim)
                    codes[run.name] = code
                    left = len(pending) + len(active)
                    eta = sum(durations) / len(durations) * left / self.parallel
                    log.info("sweep: %s %s in %s (exit %d) | %d finished here, %d running, %d queued | ETA %s",
                             run.name, "done" if code == 0 else "FAILED", _format_seconds(seconds), code,
                             len(codes), len(active), len(pending), _format_seconds(eta))
        except BaseException:
            self._stop(active.values())
            raise
        return codes

    def _start(self, pending: collections.deque, slot: int, retry_failed: bool):
        while pending:
            run = pending.popleft()
            directory = state.run_dir(self.output, run.name)
            claim = state.try_claim(directory, self.stale_after_s)
            if claim is None:
                log.info("sweep: %s is running in another process; skipped", run.name)
                continue
            current = (state.read_status(directory) or {}).get("state")
            if current == "done" or (current == "failed" and not retry_failed):  # finished meanwhile
                claim.release()
                continue
            previous = state.read_status(directory) or {}
            resumed = (directory / "checkpoints").is_dir()
            state.write_status(directory, state="started", hash=run.run_hash, attempts=previous.get("attempts", 0) + 1,
                               started=time.time())
            cores = self.slots[slot]
            handle = open(directory / state.LOG_FILE, "ab")  # noqa: SIM115  (closed when the process ends)
            process = subprocess.Popen(
                train_command(run, directory), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=thread_environment(len(cores) if self.pinned else 1),
                preexec_fn=_child_setup(cores if self.pinned else ()),  # noqa: PLW1509  (no threads here)
            )
            handle.close()
            claim.add_pid(process.pid)
            log.info("sweep: %s %s (cores %s)", "resuming" if resumed else "starting", run.name,
                     ",".join(map(str, cores)))
            return run, process, claim, time.time()
        return None

    def _finish(self, run: Run, code: int, seconds: float, claim: state.Claim) -> None:
        directory = state.run_dir(self.output, run.name)
        fields = {"state": "done" if code == 0 else "failed", "exit_code": code, "finished": time.time()}
        previous = state.read_status(directory) or {}
        fields["seconds"] = previous.get("seconds", 0.0) + seconds
        if code != 0:
            fields["error"] = last_error_line(directory / state.LOG_FILE)
        state.write_status(directory, **fields)
        claim.release()
        self.on_finish(run, code)

    def _stop(self, active) -> None:
        """Interrupted: the trainers get SIGTERM (they checkpoint) and a minute to stop; claims are freed,
        so a rerun resumes the runs."""
        for run, process, _, _ in active:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.time() + 60
        for run, process, claim, began in active:
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            directory = state.run_dir(self.output, run.name)
            previous = state.read_status(directory) or {}
            state.write_status(directory, state="interrupted",
                               seconds=previous.get("seconds", 0.0) + time.time() - began)
            claim.release()


def last_error_line(log_file: Path) -> str:
    try:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return ""
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1][:300]


def sweep_command(spec: Path, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lowres.cli", "sweep", str(spec), f"--output={output}", *extra]


def write_commands_file(spec: Path, output: Path, runs: Sequence[Run]) -> Path:
    """One shell command per run (for GNU parallel, a cluster's job-array tool, any scheduler). Each
    goes through the sweep's claim and status files, so running a line twice never trains twice."""
    path = output / "commands.txt"
    lines = [f"cd {shlex.quote(os.getcwd())} && " + shlex.join(sweep_command(spec, output, f"--index={run.index}"))
             for run in runs]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_slurm_array(spec: Path, output: Path, runs: Sequence[Run], parallel: int,
                      options: Sequence[str] = ()) -> Path:
    """A SLURM array job: task i trains run i of the manifest (`lowres sweep ... --index=i`). `options`
    become `#SBATCH --KEY=VALUE` lines (partition, time, GPUs, ...)."""
    if not runs:
        raise UsageError("no run left to submit: every selected run is done, running or failed "
                         "(add --retry_failed to submit failed ones again)")
    indexes = ",".join(str(run.index) for run in runs)
    header = [
        "#!/bin/bash",
        f"#SBATCH --job-name=lowres-{spec.stem}",
        f"#SBATCH --array={indexes}%{parallel}",
        f"#SBATCH --output={output / state.RUNS_DIR}/slurm-%A_%a.log",
        *[f"#SBATCH --{option.lstrip('-')}" for option in options],
    ]
    body = ["set -euo pipefail", f"cd {shlex.quote(os.getcwd())}",
            "exec " + shlex.join(sweep_command(spec, output)) + ' --index="${SLURM_ARRAY_TASK_ID}"']
    path = output / "slurm_array.sbatch"
    path.write_text("\n".join(header + body) + "\n")
    path.chmod(0o755)
    return path
