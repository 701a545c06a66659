"""Fault-injection soak: SIGKILL a quickstart-shaped `lowres train` (smoke.gin) at random moments, restart it, and
check that every run ends with the parameters of an uninterrupted run, bit for bit.

    python benchmarks/fault_soak.py --kills 20 --output benchmarks/results/fault-soak.json

Each trial starts a fresh run and kills it once, at a moment chosen by its mode (cycled):
  random   a uniform step, and a uniform fraction of a step's time after that step logged
  save     as soon as an asynchronous checkpoint save is in flight (an Orbax temporary directory)
  eval     as soon as a step with held-out evaluation has logged (the evaluation hook is running)
  startup  a uniform time before the first step (data preparation, compilation)
then reruns the same command to completion and compares the final checkpoint's parameters and the
logged losses with the reference run's. Prints a table and "k of N resumed identically"; writes JSON.
Not part of CI: N = 20 takes about 15 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("random", "save", "eval", "startup")


def train_args(model_dir: Path, steps: int) -> list[str]:
    # smoke.gin: the quickstart's pipeline (r_and_s, temperature mixing, encoder-decoder) at toy size.
    return [sys.executable, "-m", "lowres.cli", "train", "--gin_file=smoke.gin", f"--model_dir={model_dir}",
            "--no_progress", f"--gin.TrainConfig.num_steps={steps}",
            "--gin.TrainConfig.log_every=1", "--gin.CheckpointConfig.save_interval_steps=5",
            "--gin.EvalConfig.every_steps=10", "--gin.EvalConfig.max_documents=8",
            "--gin.EvalConfig.decode_examples=2"]  # fmt: skip


def logged_steps(model_dir: Path) -> list[int]:
    path = model_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line being written
        if "loss" in record:
            steps.append(record["step"])
    return steps


def saving(model_dir: Path) -> bool:
    checkpoints = model_dir / "checkpoints"
    return checkpoints.is_dir() and any("orbax-checkpoint-tmp" in p.name for p in checkpoints.iterdir())


def final_state(model_dir: Path):
    from lowres.checkpoints.trained_model import load_trained_model

    model = load_trained_model(model_dir)
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return model, [(r["step"], r["loss"]) for r in records if "loss" in r]


def _median_step_seconds(model_dir: Path) -> float:
    """Median wall time of a step in a run's metrics (each record's tokens over its tokens/s)."""
    import statistics

    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    times = [r["step_time_s"] for r in records if "step_time_s" in r]
    return statistics.median(times) if times else 0.05


def identical(model_dir: Path, reference) -> bool:
    import jax
    import numpy as np

    model, losses = final_state(model_dir)
    ref_model, ref_losses = reference
    same_params = all(np.array_equal(np.asarray(a), np.asarray(b)) and a.dtype == b.dtype
                      for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(ref_model.params), strict=True))  # fmt: skip
    return bool(same_params and model.step == ref_model.step and losses == ref_losses)


def kill_when(process: subprocess.Popen, mode: str, model_dir: Path, rng: random.Random, step_s: float,
              steps: int) -> str:  # fmt: skip
    """Waits for `mode`'s moment, SIGKILLs the process, and says when it struck."""
    start = time.time()
    if mode == "startup":
        delay = rng.uniform(2.0, 12.0)
        while time.time() - start < delay and process.poll() is None and not logged_steps(model_dir):
            time.sleep(0.02)
    elif mode == "random":  # a uniform step, then a uniform part of a step's time after it logged
        target, fraction = rng.randrange(1, steps), rng.random()
        while process.poll() is None and target not in logged_steps(model_dir):
            time.sleep(0.005)
        time.sleep(fraction * step_s)
    elif mode == "save":
        target = rng.choice([5, 10, 15, 20, 25, 30])
        while process.poll() is None and not (saving(model_dir) and (logged_steps(model_dir) or [0])[-1] >= target):
            time.sleep(0.005)
    else:  # eval: evaluation runs right after the logged record of step 10, 20, ...
        target = rng.choice([10, 20, 30])
        while process.poll() is None and target not in logged_steps(model_dir):
            time.sleep(0.005)
    if process.poll() is not None:
        return f"finished before the kill ({mode})"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = logged_steps(model_dir)
    return f"{mode}: after step {done[-1] if done else 0}, {time.time() - start:.1f} s in"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="JSON record of the trials")
    parser.add_argument("--workdir", default=None, help="where runs go (default: a temporary directory)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lowres-soak-"))
    env = dict(os.environ)

    reference_dir = workdir / "reference"
    shutil.rmtree(reference_dir, ignore_errors=True)
    started = time.time()
    subprocess.run(train_args(reference_dir, args.steps), cwd=ROOT, env=env, check=True, capture_output=True)
    reference_s = time.time() - started
    reference = final_state(reference_dir)
    step_s = _median_step_seconds(reference_dir)
    print(f"reference: {args.steps} steps in {reference_s:.0f} s", flush=True)

    trials = []
    for trial in range(args.kills):
        mode = MODES[trial % len(MODES)]
        model_dir = workdir / f"trial-{trial:02d}"
        shutil.rmtree(model_dir, ignore_errors=True)
        process = subprocess.Popen(train_args(model_dir, args.steps), cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        moment = kill_when(process, mode, model_dir, rng, step_s, args.steps)
        rerun = subprocess.run(train_args(model_dir, args.steps), cwd=ROOT, env=env, capture_output=True, text=True)
        resumed = next((line.split("resumed from")[1].strip() for line in rerun.stdout.splitlines()
                        if "resumed from" in line), "start (no checkpoint yet)")  # fmt: skip
        ok = rerun.returncode == 0 and identical(model_dir, reference)
        error = "" if rerun.returncode == 0 else rerun.stderr.strip().splitlines()[-1]
        trials.append({"trial": trial, "mode": mode, "killed": moment, "resumed_from": Path(resumed).name
                       if "/" in resumed else resumed, "identical": ok, "error": error})  # fmt: skip
        print(f"{trial:3d}  {moment:42s} resumed from {trials[-1]['resumed_from']:>8}  "
              f"{'identical' if ok else 'DIFFERENT ' + error}", flush=True)
        shutil.rmtree(model_dir, ignore_errors=True)
    killed = [t for t in trials if not t["killed"].startswith("finished")]
    good = sum(t["identical"] for t in killed)
    summary = f"{good} of {len(killed)} resumed identically"
    if len(killed) < len(trials):
        summary += f" ({len(trials) - len(killed)} trial(s) finished before the kill)"
    print(summary)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"summary": summary, "steps": args.steps, "seed": args.seed,
                                                 "reference_seconds": round(reference_s, 1), "trials": trials,
                                                 "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPU"},
                                                indent=2) + "\n")  # fmt: skip
    return 0 if good == len(killed) == len(trials) else 1


if __name__ == "__main__":
    raise SystemExit(main())
