"""The training loop: sharded state creation, the jitted step, checkpoints, exact resume and hooks.

`train(model_dir, settings, hooks)` builds every setting before reading data or compiling, prepares the
data and the run directory (lowres.run_dir), creates or restores the sharded state, and runs the loop:
draw the step's batch, update, log, call the hooks, save. Evaluation, throughput and plots are hooks
(lowres.training.hooks); `lowres.jobs` assembles the usual ones.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import seqio
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from tqdm.auto import tqdm

from lowres import run_dir
from lowres.checkpoints.store import CheckpointConfig, CheckpointStore
from lowres.data.config import DataConfig
from lowres.data.streams.learned import LearnedMixingConfig
from lowres.data.streams.schedules import MixtureSchedule
from lowres.data.tasks.prepare import PreparedData, prepare_data
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab.extension import read_run_extension
from lowres.config_fields import at_least, between, greater_than, one_of, validated
from lowres.errors import ConfigError, LowresError, NonFiniteError
from lowres.interop import hf_import
from lowres.files import write_atomic
from lowres.models import partitioning
from lowres.models.architecture import (
    ModelConfig,
    abstract_split,
    architecture_for,
    build_model,
    config_from_dict,
    config_to_dict,
    non_param_state,
)
from lowres.models.losses import LOSS_NORMALIZATIONS, LossOptions, score_batch
from lowres.training import resume
from lowres.training.batch_sources import StreamConfig, open_batch_source, stream_identity
from lowres.training.hooks import StepInfo, TrainHook, TrainRun
from lowres.training.initialization import (
    InitConfig,
    hf_model_config,
    hf_params,
    hf_vocabulary,
    initialize_from,
    place_params,
)
from lowres.training.metrics import IntervalMeans, LossSpikes, MetricsWriter, console_line
from lowres.training.optimizer import OptimizerConfig, make_optimizer
from lowres.training.step import TrainState, leaf_names, train_step

NONFINITE_POLICIES = ("stop", "skip")


@gin.configurable
@validated(
    num_steps=at_least(1), log_every=at_least(1), z_loss=at_least(0.0),
    label_smoothing=between(0.0, 1.0, high_open=True), loss_normalization=one_of(*LOSS_NORMALIZATIONS),
    loss_chunk_length=at_least(0), microbatches=at_least(1), nonfinite=one_of(*NONFINITE_POLICIES),
    loss_spike_factor=greater_than(1.0), seed=at_least(0),
)  # fmt: skip
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The loop: length, logging, loss options, microbatching and what to do with non-finite steps.

    nonfinite: "stop" raises (naming the step and the non-finite gradient tensors) before any
    checkpoint of the broken state is written; "skip" keeps the previous parameters and optimiser
    state for that step and counts it. A loss above `loss_spike_factor` x its running mean counts
    as a spike in the metrics.
    """

    num_steps: int = 1000
    log_every: int = 10
    z_loss: float = 1e-4
    label_smoothing: float = 0.0
    loss_normalization: str = "tokens"
    # > 0: unembed and compute the loss in sequence chunks of this length (large vocabularies).
    loss_chunk_length: int = 0
    microbatches: int = 1
    nonfinite: str = "stop"
    loss_spike_factor: float = 1.5
    # MFU against the device's peak in the model's compute dtype (datasheet on accelerators, else a
    # measured matmul); see lowres.training.throughput.
    report_mfu: bool = True
    seed: int = 0

    def loss_options(self) -> LossOptions:
        return LossOptions(self.z_loss, self.label_smoothing, self.loss_normalization)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Every setting of a run. `from_gin()` takes the gin-bound values, so all of them are built and
    validated before any data is read or anything compiled."""

    train: TrainConfig
    data: DataConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    checkpoint: CheckpointConfig
    mesh: partitioning.MeshConfig
    vocab: vocab_lib.VocabularyConfig
    init: InitConfig
    stream: StreamConfig
    schedule: MixtureSchedule | None = None  # with stream.kind == "schedule"
    learned: LearnedMixingConfig | None = None  # with stream.kind == "learned"

    @classmethod
    def from_gin(cls, **given: Any) -> TrainSettings:
        """The gin-bound value of every setting, except those `given` by field name."""
        makers = {
            "train": TrainConfig, "data": DataConfig, "model": ModelConfig, "optimizer": OptimizerConfig,
            "checkpoint": CheckpointConfig, "mesh": partitioning.MeshConfig, "vocab": vocab_lib.VocabularyConfig,
            "init": InitConfig, "stream": StreamConfig,
        }  # fmt: skip
        unknown = sorted(set(given) - set(makers) - {"schedule", "learned"})
        if unknown:
            raise TypeError(f"TrainSettings has no field(s) {unknown}")
        values = {name: given.get(name) or make() for name, make in makers.items()}
        kind = values["stream"].kind
        values["schedule"] = (given.get("schedule") or MixtureSchedule()) if kind == "schedule" else None
        values["learned"] = (given.get("learned") or LearnedMixingConfig()) if kind == "learned" else None
        return cls(**values)


@dataclasses.dataclass
class ShardedState:
    """A train state on a mesh, with the shardings and the graph the step needs."""

    state: TrainState
    shardings: Any
    graphdef: nnx.GraphDef
    rest: Any  # non-parameter model state (dropout RNG streams), see factory.non_param_state
    abstract: Any
    dropout_seed: int | None


def create_sharded_state(
    model_config, optimizer: optax.GradientTransformation, mesh: Mesh, rules, seed: int
) -> ShardedState:
    """Initialises parameters and optimiser state directly in their sharded layout.

    Parameter shardings come from the logical axis names; optimiser-state shardings are read
    from the compiled initialiser, so factored or per-parameter states land where XLA puts them.
    """
    with nnx.logical_axis_rules(rules):
        graphdef, abstract_params = abstract_split(model_config, seed)
        specs = nnx.to_pure_dict(nnx.get_partition_spec(abstract_params))
    param_shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs)

    def init() -> TrainState:
        params = nnx.to_pure_dict(nnx.state(build_model(model_config, seed), nnx.Param))
        params = jax.lax.with_sharding_constraint(params, param_shardings)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))

    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        compiled = jax.jit(init).lower().compile()
        state = compiled()
    shardings = jax.tree.map(lambda x: x.sharding, state)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    dropout_seed = seed if model_config.dropout_rate > 0 else None
    return ShardedState(state, shardings, graphdef, non_param_state(model_config, seed), abstract, dropout_seed)


def compile_train_step(
    sharded: ShardedState, optimizer, schedule, z_loss: float, mesh: Mesh, rules, loss_chunk_length: int = 0,
    *, loss_options: LossOptions | None = None, microbatches: int = 1, skip_nonfinite: bool = False,
):
    """The jitted step with explicit in/out shardings; the old state's buffers are donated."""
    batch_axes = partitioning.batch_sharding(mesh, rules).spec[0]

    def microbatch_sharding(ndim: int) -> NamedSharding:
        return NamedSharding(mesh, jax.sharding.PartitionSpec(None, batch_axes, *[None] * (ndim - 2)))

    step = functools.partial(
        train_step,
        graphdef=sharded.graphdef,
        rest=sharded.rest,
        optimizer=optimizer,
        schedule=schedule,
        z_loss=z_loss,
        dropout_seed=sharded.dropout_seed,
        loss_chunk_length=loss_chunk_length,
        loss_options=loss_options,
        microbatches=microbatches,
        skip_nonfinite=skip_nonfinite,
        microbatch_sharding=microbatch_sharding,
    )
    return jax.jit(
        step,
        in_shardings=(sharded.shardings, partitioning.batch_sharding(mesh, rules)),
        out_shardings=(sharded.shardings, partitioning.replicated(mesh)),
        donate_argnums=(0,),
    )


class Scoring:
    """Forward-only scoring of host-local batches, compiled once with the training parameters' shardings:
    summed target NLL and tokens of batches sharded like training batches, and per-row NLL of
    replicated batches (bits per byte)."""

    def __init__(self, sharded: ShardedState, mesh: Mesh, rules):
        score = functools.partial(score_batch, graphdef=sharded.graphdef, rest=sharded.rest)

        def sums(params, batch):
            return score(params, batch).sum(), batch["decoder_loss_weights"].sum()

        params_sharding = sharded.shardings.params
        self._replicated = partitioning.replicated(mesh)
        self._batch_sharding = partitioning.batch_sharding(mesh, rules)
        self._sums = jax.jit(sums, in_shardings=(params_sharding, self._batch_sharding), out_shardings=self._replicated)
        self._rows = jax.jit(score, in_shardings=(params_sharding, self._replicated), out_shardings=self._replicated)

    def to_global(self, local: Mapping[str, np.ndarray], replicate: bool = False) -> dict[str, jax.Array]:
        """Host-local rows -> one global batch (sharded like training, or the same rows on every device)."""
        if replicate:
            return {k: jax.make_array_from_process_local_data(self._replicated, v, v.shape) for k, v in local.items()}
        return {k: jax.make_array_from_process_local_data(self._batch_sharding, v) for k, v in local.items()}

    def loss_sums(self, params, local: Mapping[str, np.ndarray]) -> tuple[float, float]:
        nll, tokens = self._sums(params, self.to_global(local))
        return float(nll), float(tokens)

    def mean_loss(self, params, local: Mapping[str, np.ndarray]) -> float:
        nll, tokens = self.loss_sums(params, local)
        return nll / max(tokens, 1.0)

    def row_nll(self, params, local: Mapping[str, np.ndarray]) -> np.ndarray:
        out = self._rows(params, self.to_global(local, replicate=True))
        return np.asarray(out.addressable_data(0))


class Preemption:
    """Turns SIGTERM into a flag the loop checks after each step (then saves and exits)."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def agreed(self) -> bool:
        """Whether any host was asked to stop (all hosts must stop at the same step)."""
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.int32(self.requested))))

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _nonfinite_message(pending: list[dict[str, Any]], first_step: int, names: list[str]) -> tuple[int, str] | None:
    """The first non-finite step among `pending` (steps first_step+1, ...) and what was not finite."""
    for offset, metrics in enumerate(pending):
        if not bool(metrics["finite"]):
            bad = [n for n, ok in zip(names, np.asarray(metrics["grad_finite"]).tolist()) if not ok]
            loss = float(metrics["loss"])
            what = f"loss {loss}" if not math.isfinite(loss) else f"loss {loss:.4f} (finite)"
            shown = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            return first_step + offset + 1, f"{what}; non-finite gradients: {shown or 'none'}"
    return None


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drops records logged after `last_step` by a run that was killed before its next checkpoint."""
    import json

    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= last_step]
    if len(kept) != len(lines):
        write_atomic(path, "".join(line + "\n" for line in kept))


def _agreed_seed(seed: int) -> int:
    """The data seed every host uses: process 0's, checked to be the same everywhere."""
    if jax.process_count() == 1:
        return seed
    from jax.experimental import multihost_utils

    seeds = np.asarray(multihost_utils.process_allgather(np.int64(seed))).ravel()
    if len(set(seeds.tolist())) != 1:
        raise ConfigError(f"DataConfig.seed differs between hosts ({seeds.tolist()}); give every host the same config")
    return int(seeds[0])


def _check_resumable(model_dir: Path, info: run_dir.RunInfo) -> None:
    """Refuses a run directory that holds a run of a different model. The attention implementation is
    not part of the model (the same function, computed another way), and lowres.json files written
    before the field existed lack it."""
    if not run_dir.is_run_dir(model_dir):
        return
    previous = {k: v for k, v in run_dir.read_run_info(model_dir).model.items() if k != "attention"}
    current = {k: v for k, v in info.model.items() if k != "attention"}
    if previous != current:
        changed = sorted(k for k in current if previous.get(k) != current[k])
        raise ConfigError(
            f"{model_dir} holds a run with a different model ({', '.join(changed)} differ); "
            "use a new --model_dir or the same model settings to resume"
        )


def _hf_model_config(model_dir: Path, settings: TrainSettings):
    """(the imported checkpoint or None, the model config) of a run from `InitConfig.hf_checkpoint`. A
    restart reads the config the run recorded instead of the checkpoint's weights."""
    extension = read_run_extension(model_dir)
    if run_dir.is_run_dir(model_dir) and extension is not None:
        return None, config_from_dict(run_dir.read_run_info(model_dir).model)
    imported = hf_import.read_hf_checkpoint(settings.init.hf_checkpoint)
    vocab_size = extension.new_vocab_size if extension else imported.config.vocab_size
    return imported, hf_model_config(imported.config, settings.model, vocab_size)


def _run_info(settings: TrainSettings, data: PreparedData, model_config) -> run_dir.RunInfo:
    return run_dir.RunInfo(
        model=config_to_dict(model_config),
        vocabulary=vocab_lib.vocabulary_file(settings.vocab),
        num_sentinels=settings.vocab.num_sentinels,
        inputs_length=settings.data.inputs_length,
        targets_length=settings.data.targets_length,
        objective=settings.data.objective,
        languages=tuple(data.languages),
        data_source=settings.data.source,
        decoder_attention=settings.data.decoder_attention,
        mode_tokens=data.mode_tokens,
        translation_rate=settings.data.translation_rate,
    )


class _Loop:
    """One run of the loop: the state, the batch source, the store and the logging around them."""

    def __init__(self, run: TrainRun, settings: TrainSettings, state: TrainState, step_fn, source, scoring: Scoring,
                 store: CheckpointStore, saved_meta: Mapping[str, Any], static_meta: Mapping[str, Any],
                 hooks: Sequence[TrainHook], progress: bool):  # fmt: skip
        self.run, self.settings, self.state, self.step_fn = run, settings, state, step_fn
        self.source, self.scoring, self.store, self.hooks = source, scoring, store, list(hooks)
        self.static_meta = static_meta
        self.names = leaf_names(state.params)
        self.interval = IntervalMeans()
        self.interval.restore(saved_meta.get("pending_metrics", []))
        self.spikes = LossSpikes(factor=settings.train.loss_spike_factor)
        self.spikes.restore(saved_meta.get("loss_spikes", {}))
        self.skipped = int(saved_meta.get("skipped_steps", 0))
        self.last_logged = saved_meta.get("last_logged", {})
        self.writer = MetricsWriter(run.model_dir / run_dir.METRICS_FILE, run.model_dir / run_dir.TENSORBOARD_DIR)
        self.history: list[dict[str, Any]] = []
        self.hook_history: list[dict[str, Any]] = []
        self.progress = progress

    def check_finite(self, done: int) -> None:
        """Reads the pending steps' finiteness; stops (policy "stop") or counts skipped steps."""
        pending = self.interval.fetch()
        first = done - len(pending)
        found = _nonfinite_message(pending, first, self.names)
        if found is None:
            return
        bad_step, what = found
        if self.settings.train.nonfinite == "stop":
            raise NonFiniteError(
                f"non-finite values at step {bad_step}: {what}; stopped (TrainConfig.nonfinite='stop') "
                f"without saving it; the last checkpoint ({self.store.latest_step()}) is intact"
            )
        count = sum(1 for m in pending if not bool(m["finite"]))
        self.skipped += count
        self.run.print(f"skipped {count} non-finite update(s) in steps {first + 1}..{done}, first at step {bad_step}: "
                       f"{what}")

    def metadata(self, done: int, fingerprint: str) -> dict[str, Any]:
        upcoming = self.source.peek(done)  # the batch of step `done`: what a resume checks first
        return {
            **self.static_meta,
            "data_position": {
                "step": done,
                "batches_per_host": done,
                "host_batch_size": self.settings.data.batch_size // jax.process_count(),
                "fingerprints": resume.gather_fingerprints(fingerprint),
                "next_fingerprints": (resume.gather_fingerprints(resume.batch_fingerprint(upcoming))
                                      if upcoming is not None else None),
            },
            "batch_source": self.source.state_dict(),
            "pending_metrics": self.interval.pending(),
            "loss_spikes": self.spikes.state(),
            "skipped_steps": self.skipped,
            "last_logged": self.last_logged,
        }

    def save(self, done: int, fingerprint: str, force: bool = False) -> None:
        if not force and not self.store.should_save(done):
            return
        if len(self.interval):
            self.check_finite(done)
        ranking = {k: v for k, v in self.last_logged.items() if isinstance(v, (int, float))} or None
        self.store.save(done, self.state.params, self.state.opt_state, self.metadata(done, fingerprint), force=True,
                        metrics=ranking if self.settings.checkpoint.best_metric else None)

    def log(self, done: int, step_time: float) -> None:
        self.check_finite(done)
        values = self.interval.summarize()
        self.spikes.update(values["step_losses"])
        record = {
            "step": done,
            "loss": values["loss"],
            "nll": values["nll"],
            "learning_rate": values["learning_rate"],
            "grad_norm": values["grad_norm"],
            "target_tokens": int(values["num_tokens"]),
            "loss_spikes": self.spikes.count,
            "skipped_steps": self.skipped,
            "step_time_s": step_time,
        }
        info = StepInfo(done, self.state.params, step_time)
        for hook in self.hooks:
            record.update(hook.log_fields(info))
        record.update(self.source.metrics(done))
        self.last_logged = {"step": done, "loss": record["loss"], "nll": record["nll"]}
        self.history.append(record)
        self.writer.write(record)
        self.run.print(console_line(record))

    def run_hooks(self, done: int) -> float:
        """Runs the hooks due at `done`; returns the seconds they took (kept out of the step timings)."""
        started = time.perf_counter()
        for hook in self.hooks:
            if hook.due(done, self.settings.train.num_steps):
                out = hook.run(StepInfo(done, self.state.params))
                if out:
                    record = {"step": done, **out}
                    self.hook_history.append(record)
                    self.writer.write(record)
        return time.perf_counter() - started

    def loop(self, start_step: int, fingerprint: str) -> dict[str, Any]:
        num_steps, log_every = self.settings.train.num_steps, self.settings.train.log_every
        bar = tqdm(total=num_steps, initial=start_step, disable=not (self.progress and self.run.is_main),
                   unit="step", dynamic_ncols=True)  # fmt: skip
        self.run = dataclasses.replace(self.run, print=lambda line: _console(bar, line, self.run.is_main))
        for hook in self.hooks:
            hook.start(self.run)
        last_time, last_step, compile_time = time.perf_counter(), start_step, None
        final_step, preempted = start_step, False
        try:
            with Preemption() as preemption, jax.set_mesh(self.run.mesh), nnx.logical_axis_rules(self.settings.mesh.rules):
                for step in range(start_step, num_steps):
                    local = self.source.next(step)
                    fingerprint = resume.batch_fingerprint(local)
                    fresh = self.source.measurement_batch(step)
                    loss_before = self.scoring.mean_loss(self.state.params, fresh) if fresh is not None else None
                    self.state, metrics = self.step_fn(self.state, self.scoring.to_global(local))
                    if fresh is not None:
                        self.source.report(step, loss_before, self.scoring.mean_loss(self.state.params, fresh))
                    self.interval.add(metrics)
                    done = step + 1
                    if compile_time is None:
                        jax.block_until_ready(metrics)
                        compile_time = time.perf_counter() - last_time
                        last_time, last_step = time.perf_counter(), done
                    if done % log_every == 0 or done == num_steps:
                        # Steps are dispatched asynchronously: time the interval once its last step is done.
                        jax.block_until_ready(metrics)
                        now = time.perf_counter()
                        step_time = (now - last_time) / max(done - last_step, 1) if done > last_step else compile_time
                        last_time, last_step = now, done
                        self.log(done, step_time)
                        bar.set_postfix(loss=f"{self.history[-1]['loss']:.3f}")
                    last_time += self.run_hooks(done)
                    bar.update(1)
                    final_step = done
                    if preemption.agreed():
                        self.save(done, fingerprint, force=True)
                        self.store.wait()
                        preempted = True
                        self.run.print(f"preempted (SIGTERM): saved step {done} in {self.store.directory}; "
                                       "rerun to resume")
                        break
                    self.save(done, fingerprint)
                if not preempted and self.store.latest_step() != final_step:
                    self.save(final_step, fingerprint, force=True)
        except OSError as error:  # metrics, plots, exports: a full disk or read-only mount is one line
            failure = self.store.write_failure(error)
            if failure is None:
                raise
            raise failure from error
        finally:
            bar.close()
            self.writer.close()
            try:
                self.store.close()
            except LowresError as close_error:
                if close_error.__context__ is None:  # else the error already on its way out stays the one reported
                    raise
        summary = {
            "model_dir": str(self.run.model_dir),
            "start_step": start_step,
            "final_step": final_step,
            "preempted": preempted,
            "compile_time_s": compile_time,
            "history": self.history,
            "eval_history": self.hook_history,
        }
        for hook in self.hooks:
            hook.end(self.run, summary)
        return summary


def _console(bar, line: str, is_main: bool) -> None:
    if is_main:
        bar.write(line)
        sys.stdout.flush()


def train(
    model_dir: str | Path,
    settings: TrainSettings | None = None,
    hooks: Sequence[TrainHook] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Trains (or resumes) in `model_dir` with `settings` (default: the gin-bound values) and `hooks`.

    A new run (no checkpoint in `model_dir`) starts from `settings.init.checkpoint` when set. Returns
    the run's summary: start and final step, whether it was preempted, the logged records (`history`)
    and the hooks' records (`eval_history`).
    """
    settings = settings or TrainSettings.from_gin()
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    data_config = dataclasses.replace(settings.data, seed=_agreed_seed(settings.data.seed))
    settings = dataclasses.replace(settings, data=data_config)

    imported = None
    if settings.init.hf_checkpoint:
        settings = dataclasses.replace(settings, vocab=hf_vocabulary(settings.init, settings.vocab))
    data = prepare_data(model_dir, data_config, settings.vocab, progress=progress and is_main)
    if settings.init.hf_checkpoint:
        imported, model_config = _hf_model_config(model_dir, settings)
    else:
        model_config = settings.model.resolve(data.vocabulary.vocab_size)
    info = _run_info(settings, data, model_config)
    _check_resumable(model_dir, info)
    if is_main:
        run_dir.write_run_info(model_dir, info)
    vocabulary_sha256 = resume.file_fingerprint(model_dir / info.vocabulary)
    data_identity = resume.data_identity(data_config, data.mixture, jax.process_count())
    data_identity["stream"] = stream_identity(settings.stream, settings.schedule, settings.learned)

    mesh = partitioning.create_mesh(settings.mesh)
    rules = settings.mesh.rules
    store = CheckpointStore(model_dir / run_dir.CHECKPOINT_DIR, settings.checkpoint)
    start_step = store.latest_step() or 0
    saved_meta = store.metadata(start_step) if start_step else {}
    where = f"{store.directory}/{start_step}"
    if start_step:
        resume.check_resume(saved_meta, vocabulary_sha256=vocabulary_sha256, data=data_identity, where=where)
    position = saved_meta.get("data_position", {})
    # Checkpoints record the fingerprint of the batch a resume trains on first; older ones only the last
    # trained batch's, which the stream then rebuilds (one batch) to check.
    expect_next = bool(position.get("next_fingerprints")) or not position
    saved_prints = position.get("next_fingerprints" if expect_next else "fingerprints") if position else None
    expected = saved_prints[jax.process_index()] if saved_prints else None
    converter = architecture_for(model_config).feature_converter(data_config.pack, data_config.decoder_attention)
    # Building the input pipeline (graph construction, shuffle buffers) overlaps model compilation.
    # A resumed stream opens at the resume step and checks its first batch against the checkpoint.
    shard_info = seqio.ShardInfo(jax.process_index(), jax.process_count())
    loader = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    opening = loader.submit(
        open_batch_source, settings.stream, data.mixture, data_config, shard_info, converter,
        start_step=start_step, expected_fingerprint=expected, saved_state=saved_meta.get("batch_source"),
        where=where, schedule=settings.schedule, learned=settings.learned, expect_next=expect_next,
        progress=progress and is_main,
    )  # fmt: skip
    optimizer, schedule = make_optimizer(settings.optimizer, settings.train.num_steps)
    sharded = create_sharded_state(model_config, optimizer, mesh, rules, settings.train.seed)
    state = sharded.state
    if not start_step and settings.init.hf_checkpoint:
        imported = imported or hf_import.read_hf_checkpoint(settings.init.hf_checkpoint)
        extension = read_run_extension(model_dir)
        params = hf_params(imported, extension, settings.init.new_rows, settings.train.seed)
        state = place_params(state, params, f"InitConfig.hf_checkpoint={settings.init.hf_checkpoint!r}")
        if is_main:
            added = len(extension.added_pieces) if extension else 0
            print(f"initialised from Hugging Face checkpoint {settings.init.hf_checkpoint}; {added} vocabulary "
                  f"entries added ({settings.init.new_rows} rows)")
    if not start_step and settings.init.checkpoint:
        state, report = initialize_from(settings.init, state)
        if is_main:
            fresh = f"; freshly initialised: {', '.join(report['fresh'])}" if report["fresh"] else ""
            print(f"initialised {report['loaded']} parameters from {report['checkpoint']} step {report['step']}"
                  f"{' with its optimiser state' if report['optimizer_state'] else ''}{fresh}")
    if start_step:
        restored = store.restore(start_step, sharded.abstract.params, sharded.abstract.opt_state)
        state = TrainState(
            step=jnp.asarray(start_step, jnp.int32), params=restored["params"], opt_state=restored["opt_state"]
        )
        if is_main:
            print(f"resumed from {where}")
    gin_config = gin.operative_config_str()
    if is_main:
        write_atomic(model_dir / run_dir.CONFIG_FILE, gin_config)
        _truncate_metrics(model_dir / run_dir.METRICS_FILE, start_step)

    train_config = settings.train
    step_fn = compile_train_step(
        sharded, optimizer, schedule, train_config.z_loss, mesh, rules, train_config.loss_chunk_length,
        loss_options=train_config.loss_options(), microbatches=train_config.microbatches,
        skip_nonfinite=train_config.nonfinite == "skip",
    )
    source = opening.result()
    loader.shutdown()
    scoring = Scoring(sharded, mesh, rules)
    run = TrainRun(
        model_dir=model_dir, info=info, model_config=model_config, data_config=data_config, data=data,
        shard_info=shard_info, converter=converter, mesh=mesh, graphdef=sharded.graphdef, rest=sharded.rest,
        num_steps=train_config.num_steps, is_main=is_main, loss_sums=scoring.loss_sums, row_nll=scoring.row_nll,
        print=lambda line: print(line) if is_main else None,
    )  # fmt: skip
    static_meta = {
        "run": info.to_dict(),
        "data_seed": data_config.seed,
        "data": data_identity,
        "vocabulary_file": info.vocabulary,
        "vocabulary_sha256": vocabulary_sha256,
        "gin_config": gin_config,
    }
    loop = _Loop(run, settings, state, step_fn, source, scoring, store, saved_meta, static_meta, hooks, progress)
    return loop.loop(start_step, expected or "")
