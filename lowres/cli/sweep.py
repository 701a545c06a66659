"""`lowres sweep SPEC --output=OUT`: train a sweep's runs (resumable, never one run twice at once);
`lowres sweep status OUT`: what is done, running, failed; `lowres sweep results OUT`: rebuild tables."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from lowres.cli.common import check_writable
from lowres.errors import UsageError

LAUNCHERS = ("local", "commands", "slurm")


def add_parser(commands) -> None:
    sweep = commands.add_parser(
        "sweep", help="run a sweep of training runs from a YAML spec; `sweep status OUT` shows its state",
        description="Expand a sweep spec (gin files, bindings, arms, grid, zip, seeds; see README) into named runs "
        "and train those not done yet under OUT/runs/<name>. A rerun skips finished runs, resumes interrupted "
        "ones from their checkpoints and leaves failed ones unless --retry_failed. OUT/results.{csv,json,md} and "
        "OUT/plots/ are refreshed as runs finish. Also: `lowres sweep status OUT`, `lowres sweep results OUT`.",
    )
    sweep.add_argument("spec", metavar="SPEC|status|results", help="the sweep spec (YAML), or an action")
    sweep.add_argument("target", nargs="?", metavar="OUT", help="the sweep directory (for status and results)")
    sweep.add_argument("--output", metavar="OUT", help="where the sweep's runs and results go")
    sweep.add_argument("--dry_run", action="store_true", help="list the runs and their commands; train nothing")
    sweep.add_argument("--parallel", type=int, default=1, help="local runs at a time (cores are split between them)")
    sweep.add_argument("--only", metavar="PATTERN", help="only runs whose name matches this glob, e.g. 'lr=0.003-*'")
    sweep.add_argument("--index", type=int, default=None, help="only the run with this index (array jobs)")
    sweep.add_argument("--retry_failed", action="store_true", help="train failed runs again")
    sweep.add_argument("--launcher", choices=LAUNCHERS, default="local",
                       help="local: train here; commands: write OUT/commands.txt (one command per run, for any "
                       "scheduler); slurm: write OUT/slurm_array.sbatch and submit it with sbatch (--dry_run: "
                       "write only)")
    sweep.add_argument("--slurm_option", action="append", default=[], metavar="KEY=VALUE",
                       help="an #SBATCH option for the array job, e.g. partition=gpu or gres=gpu:1 (repeatable)")
    sweep.add_argument("--stale_after_s", type=float, default=600.0,
                       help="a claim from another host untouched this long is stale (default 600)")


def _table(rows, columns) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def _status(target: str | None, stale_after_s: float) -> int:
    from lowres.sweeps.sweep import status_rows

    if not target:
        raise UsageError("lowres sweep status OUT: name the sweep directory")
    rows = status_rows(target, stale_after_s)
    _table(rows, ["run", "state", "steps", "attempts", "seconds", "error"])
    from lowres.sweeps.state import STATES

    counts = {name: sum(row["state"] == name for row in rows) for name in STATES}
    print(", ".join(f"{n} {name}" for name, n in counts.items() if n))
    return 0


def _results(target: str | None) -> int:
    from lowres.sweeps import results
    from lowres.sweeps.sweep import prepare, read_manifest

    if not target:
        raise UsageError("lowres sweep results OUT: name the sweep directory")
    spec_path, _ = read_manifest(Path(target))
    spec, runs = prepare(spec_path, Path(target))
    results.refresh(runs, Path(target), spec)
    print(f"wrote {Path(target) / 'results.md'}, results.csv, results.json and plots/")
    return 0


def run(args) -> int:
    if args.parallel < 1:
        raise UsageError(f"--parallel={args.parallel}: give 1 or more")
    if args.spec == "status":
        return _status(args.target or args.output, args.stale_after_s)
    if args.spec == "results":
        return _results(args.target or args.output)
    if args.target:
        raise UsageError(f"unexpected argument {args.target!r}; write lowres sweep SPEC --output=OUT")
    if not args.output:
        raise UsageError("--output=OUT is required: the directory for the sweep's runs and results")
    output = Path(args.output)
    check_writable(output, "--output")
    from lowres.sweeps import launch
    from lowres.sweeps.sweep import prepare, run_sweep, select

    spec, runs = prepare(args.spec, output)
    chosen = select(runs, args.only, args.index)
    if args.dry_run and args.launcher == "local":
        for run in chosen:
            print(f"[{run.index}] {run.name}  ({run.run_hash})")
            print("    lowres " + shlex.join(launch.train_command(run, output / "runs" / run.name)[3:]))
        print(f"{len(chosen)} of {len(runs)} runs; nothing trained (--dry_run)")
        return 0
    if args.launcher == "commands":
        todo = launch.runs_to_do(output, chosen, args.retry_failed, args.stale_after_s)
        print(f"wrote {launch.write_commands_file(spec.path, output, todo)}: {len(todo)} commands")
        return 0
    if args.launcher == "slurm":
        return _submit_slurm(spec, output, chosen, args)
    rows = run_sweep(args.spec, output, parallel=args.parallel, only=args.only, index=args.index,
                     retry_failed=args.retry_failed, stale_after_s=args.stale_after_s)
    selected = {run.name for run in chosen}
    failed = [row["run"] for row in rows if row["state"] == "failed" and row["run"] in selected]
    done = sum(row["state"] == "done" for row in rows)
    print(f"sweep {output}: {done} of {len(rows)} runs done; results in {output / 'results.md'}")
    if failed:
        print(f"lowres: error: {len(failed)} run(s) failed ({', '.join(failed[:5])}): see "
              f"{output / 'runs' / failed[0] / 'train.log'}; rerun with --retry_failed after fixing", file=sys.stderr)
        return 2
    return 0


def _submit_slurm(spec, output: Path, chosen, args) -> int:
    import shutil
    import subprocess

    from lowres.sweeps import launch

    todo = launch.runs_to_do(output, chosen, args.retry_failed, args.stale_after_s)
    script = launch.write_slurm_array(spec.path, output, todo, args.parallel, args.slurm_option)
    if args.dry_run:
        print(script.read_text(), end="")
        print(f"wrote {script} ({len(todo)} array tasks); not submitted (--dry_run)", file=sys.stderr)
        return 0
    if shutil.which("sbatch") is None:
        raise UsageError(f"sbatch not found on this machine: {script} is written; submit it where SLURM runs")
    subprocess.run(["sbatch", str(script)], check=True)
    return 0
