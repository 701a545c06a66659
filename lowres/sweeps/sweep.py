"""A sweep from spec to results: expand the spec, check it against what OUT already holds, train what
is not done (locally, or through a scheduler), and keep OUT's tables and plots current.

    OUT/manifest.json          the spec's path and every run (name, index, hash, gin files, bindings)
    OUT/runs/<name>/           each run (see lowres.sweeps.state)
    OUT/results.{csv,json,md}  one row per run; means and spreads over seeds
    OUT/plots/*.png            curves and metric-by-value plots
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from pathlib import Path

from lowres.errors import ConfigError, MissingFileError, UsageError
from lowres.files import read_json, write_json
from lowres.sweeps import launch, results, state
from lowres.sweeps.spec import Run, SweepSpec, expand, load_spec

log = logging.getLogger("lowres.sweeps")
MANIFEST_FILE = "manifest.json"


def prepare(spec_path: str | Path, output: Path) -> tuple[SweepSpec, list[Run]]:
    """The spec and its runs; refuses a run name whose directory in OUT holds a run with other settings."""
    spec = load_spec(spec_path)
    runs = expand(spec)
    for run in runs:
        recorded = (state.read_status(state.run_dir(output, run.name)) or {}).get("hash")
        if recorded and recorded != run.run_hash:
            raise ConfigError(
                f"{state.run_dir(output, run.name)} holds a run with other settings (hash {recorded}, the spec now "
                f"gives {run.run_hash}): change the spec's name template, use another --output, or remove that run"
            )
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / MANIFEST_FILE, {"spec": str(spec.path), "runs": [run.to_dict() for run in runs]})
    return spec, runs


def select(runs: Sequence[Run], only: str | None = None, index: int | None = None) -> list[Run]:
    if index is not None:
        chosen = [run for run in runs if run.index == index]
        if not chosen:
            raise UsageError(f"--index={index}: the sweep has runs 0..{len(runs) - 1}")
        return chosen
    if only:
        chosen = [run for run in runs if fnmatch.fnmatchcase(run.name, only)]
        if not chosen:
            raise UsageError(f"--only={only} matches none of the sweep's {len(runs)} runs (e.g. {runs[0].name})")
        return chosen
    return list(runs)


def run_sweep(spec_path: str | Path, output: str | Path, *, parallel: int = 1, only: str | None = None,
              index: int | None = None, retry_failed: bool = False,
              stale_after_s: float = state.DEFAULT_STALE_AFTER_S) -> list[dict]:
    """Trains every selected run that is not done, `parallel` at a time; returns the results rows."""
    output = Path(output)
    spec, runs = prepare(spec_path, output)
    chosen = select(runs, only, index)
    todo = launch.runs_to_do(output, chosen, retry_failed, stale_after_s)
    log.info("sweep %s: %d runs, %d selected, %d to train (%d at a time) -> %s", spec.path.name, len(runs),
             len(chosen), len(todo), parallel, output)

    def refreshed(run: Run, code: int) -> None:
        results.refresh(runs, output, spec)

    launch.LocalPool(output, parallel, stale_after_s, on_finish=refreshed).run(todo, retry_failed)
    return results.refresh(runs, output, spec)


def read_manifest(output: Path) -> tuple[Path, list[dict]]:
    path = Path(output) / MANIFEST_FILE
    if not path.is_file():
        raise MissingFileError(f"{output} holds no sweep (no {MANIFEST_FILE}); start one with `lowres sweep SPEC --output={output}`")
    manifest = read_json(path, "sweep manifest")
    return Path(manifest["spec"]), manifest["runs"]


def status_rows(output: str | Path, stale_after_s: float = state.DEFAULT_STALE_AFTER_S) -> list[dict]:
    """Each run's state, steps so far, attempts and last error, from OUT's files alone (fast: no JAX)."""
    output = Path(output)
    _, runs = read_manifest(output)
    rows = []
    for run in runs:
        directory = state.run_dir(output, run["name"])
        status = state.read_status(directory) or {}
        records = results.metric_records(directory)
        rows.append({
            "run": run["name"], "state": state.run_state(directory, stale_after_s),
            "steps": max((r.get("step", 0) for r in records), default=0),
            "attempts": status.get("attempts", 0), "seconds": round(float(status.get("seconds", 0.0))),
            "error": status.get("error", "") if status.get("state") == "failed" else "",
        })
    return rows
