"""`lowres train`: train (or resume) a model from gin configs."""

from __future__ import annotations

from pathlib import Path

from lowres import run_dir
from lowres.cli import common
from lowres.errors import ConfigError
from lowres.gin_files import parse_gin


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train (or resume) a model from gin configs",
        description="Train a model. Writes DIR/config.gin, DIR/metrics.jsonl, DIR/lowres.json and Orbax "
        "checkpoints under DIR/checkpoints/; resumes from the latest checkpoint when DIR holds one. "
        "Override any gin binding with --gin.NAME=VALUE, e.g. --gin.TrainConfig.num_steps=50.",
    )
    train.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                       help="gin config file (repeatable); names are also looked up in gin_configs/")
    train.add_argument("--model_dir", required=True, metavar="DIR", help="where the run lives")
    train.add_argument("--no_progress", action="store_true", help="no progress bar (log lines only)")
    train.add_argument("--distributed", action="store_true",
                       help="multi-host run: call jax.distributed.initialize() (auto-detected on TPU pods and "
                       "SLURM; elsewhere give the three options below)")
    train.add_argument("--coordinator_address", default=None, metavar="HOST:PORT")
    train.add_argument("--num_processes", type=int, default=None)
    train.add_argument("--process_id", type=int, default=None)


def _initialize_distributed(args) -> None:
    import jax

    # Collectives between CPU processes (tests, CPU clusters) go through gloo; accelerators use their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )


def _finish_distributed() -> None:
    """Ends a multi-host run that finished: leaving the coordination service is itself a barrier (every
    host waits there for the others), and it happens here while the backends are still alive. Left to
    interpreter exit, process 0 could tear down the coordinator's server while another host still had a
    request in flight, and exit non-zero after training had ended (seen in two 2-process CI runs).
    A host that fails instead leaves through the same barrier at exit, so none is left waiting."""
    import jax

    jax.distributed.shutdown()


def run(args) -> int:
    model_dir = Path(args.model_dir)
    common.check_writable(model_dir, "--model_dir")
    if args.distributed:
        _initialize_distributed(args)
    # lowres.jobs registers every configurable the trainer and held-out evaluation bind.
    parse_gin(args.gin_file, args.gin_bindings, registers="lowres.jobs")
    from lowres.jobs import train_job
    from lowres.training.trainer import TrainSettings

    # Every setting is built (and validated) here, before any data is read or anything compiled.
    with common.reraise_as(ConfigError, ValueError, TypeError):
        settings = TrainSettings.from_gin()
    with common.data_errors():
        summary = train_job(model_dir, settings, progress=not args.no_progress)
    import jax

    first_process = jax.process_index() == 0
    if args.distributed:
        _finish_distributed()
    if not first_process:  # one summary per run, from process 0
        return 0
    history = summary["history"]
    if history:
        print(
            f"trained steps {summary['start_step']}..{summary['final_step']}: loss {history[0]['loss']:.4f} -> "
            f"{history[-1]['loss']:.4f}; checkpoint {summary['final_step']} in {model_dir / run_dir.CHECKPOINT_DIR}"
        )
    else:
        print(f"nothing to do: {model_dir} already holds step {summary['final_step']}")
    return 0
