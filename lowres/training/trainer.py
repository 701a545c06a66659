"""The training job: sharded state creation, the jitted step, the loop, metrics and checkpoints."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
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

from lowres.data import vocab as vocab_lib
from lowres.data.learned_mixing import LearnedMixingConfig
from lowres.data.mixture_schedules import MixtureSchedule
from lowres.data.pipeline import DataConfig
from lowres.evaluation.bits_per_byte import scoring_settings
from lowres.data.prepare import VOCAB_FILE, prepare_data
from lowres.models.factory import (
    ModelConfig,
    abstract_split,
    build_model,
    config_from_dict,
    config_to_dict,
    non_param_state,
)
from lowres.training import partitioning, resume
from lowres.training.batch_sources import StreamConfig, open_batch_source, stream_identity
from lowres.training.checkpoints import CheckpointConfig, CheckpointStore
from lowres.training.evaluation import (
    EvalConfig,
    decoding_metrics,
    evaluate_heldout,
    heldout_documents,
    heldout_task_batches,
)
from lowres.training.initialization import InitConfig, initialize_from
from lowres.training.metrics import IntervalMeans, LossSpikes, MetricsWriter, console_line
from lowres.training.optimizer import OptimizerConfig, make_optimizer
from lowres.training.plots import plot_run
from lowres.training.step import LossOptions, TrainState, leaf_names, score_batch, train_step

RUN_FILE = "lowres.json"  # what evaluation needs to rebuild the model: config, vocabulary, lengths
CONFIG_FILE = "config.gin"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_DIR = "checkpoints"


NONFINITE_POLICIES = ("stop", "skip")


@gin.configurable
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
    # MFU against the datasheet peak of the accelerator (CPU: a measured float32 matmul).
    report_mfu: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"TrainConfig.nonfinite={self.nonfinite!r}; use 'stop' or 'skip'")
        if self.microbatches < 1:
            raise ValueError(f"TrainConfig.microbatches={self.microbatches}; use 1 or more")
        self.loss_options()  # validates normalization and label smoothing

    def loss_options(self) -> LossOptions:
        return LossOptions(self.z_loss, self.label_smoothing, self.loss_normalization)


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


def compile_scoring(sharded: ShardedState, mesh: Mesh, rules):
    """Jitted forward-only scoring with the training parameters' shardings.

    Returns `loss_sums(params, batch) -> (summed target NLL, target tokens)` for batches sharded
    like training batches, and `row_nll(params, batch) -> per-row NLL` for replicated batches.
    """
    score = functools.partial(score_batch, graphdef=sharded.graphdef, rest=sharded.rest)

    def sums(params, batch):
        return score(params, batch).sum(), batch["decoder_loss_weights"].sum()

    params_sharding = sharded.shardings.params
    replicated = partitioning.replicated(mesh)
    loss_sums = jax.jit(sums, in_shardings=(params_sharding, partitioning.batch_sharding(mesh, rules)),
                        out_shardings=replicated)
    row_nll = jax.jit(score, in_shardings=(params_sharding, replicated), out_shardings=replicated)
    return loss_sums, row_nll


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` so that readers see either the old file or the complete new one."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


def read_run_info(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {model_dir} is not a lowres model directory (run `lowres train` first)")
    return json.loads(path.read_text(encoding="utf-8"))


def _check_resumable(model_dir: Path, run_info: dict[str, Any]) -> None:
    path = model_dir / RUN_FILE
    if not path.exists():
        return
    previous = json.loads(path.read_text(encoding="utf-8"))
    if previous["model"] != run_info["model"]:
        changed = sorted(k for k in run_info["model"] if previous["model"].get(k) != run_info["model"][k])
        raise ValueError(
            f"{model_dir} holds a run with a different model ({', '.join(changed)} differ); "
            "use a new --model_dir or the same model settings to resume"
        )


class _Preemption:
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
        raise ValueError(f"DataConfig.seed differs between hosts ({seeds.tolist()}); give every host the same config")
    return int(seeds[0])


def _throughput_basis(arch, data_config: DataConfig, train_config: TrainConfig, mesh: Mesh):
    """Model FLOPs of one step per device (lowres.models.flops) and the peak MFU is measured against."""
    from lowres.models.flops import is_decoder_only, training_flops_per_step

    if is_decoder_only(arch):
        flops = training_flops_per_step(arch, data_config.batch_size, data_config.inputs_length + data_config.targets_length)
    else:
        flops = training_flops_per_step(arch, data_config.batch_size, data_config.inputs_length,
                                        targets_len=data_config.targets_length)
    peak = None
    if train_config.report_mfu:
        from lowres.bench.peak import device_peak_flops

        peak = device_peak_flops(mesh.devices.flat[0], "float32", size=1024)
    return flops / mesh.devices.size, peak


def train(
    model_dir: str | Path,
    *,
    train_config: TrainConfig | None = None,
    data_config: DataConfig | None = None,
    model_config: ModelConfig | None = None,
    optimizer_config: OptimizerConfig | None = None,
    checkpoint_config: CheckpointConfig | None = None,
    mesh_config: partitioning.MeshConfig | None = None,
    vocab_config: vocab_lib.VocabularyConfig | None = None,
    init_config: InitConfig | None = None,
    stream_config: StreamConfig | None = None,
    eval_config: EvalConfig | None = None,
    mixture_schedule: MixtureSchedule | None = None,
    learned_mixing: LearnedMixingConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Trains (or resumes) in `model_dir`; configs default to their gin-bound values.

    A new run (no checkpoint in `model_dir`) starts from `init_config.checkpoint` when set.
    `stream_config.kind` picks where batches come from: DataConfig's mixture, `mixture_schedule`'s
    phases, or the `learned_mixing` bandit; `eval_config` adds held-out evaluation every N steps.
    """
    train_config = train_config or TrainConfig()
    data_config = data_config or DataConfig()
    model_config = model_config or ModelConfig()
    optimizer_config = optimizer_config or OptimizerConfig()
    checkpoint_config = checkpoint_config or CheckpointConfig()
    mesh_config = mesh_config or partitioning.MeshConfig()
    vocab_config = vocab_config or vocab_lib.VocabularyConfig()
    init_config = init_config or InitConfig()
    stream_config = stream_config or StreamConfig()
    eval_config = eval_config or EvalConfig()
    # Every setting is built (and validated) here, before any data is read or anything compiled.
    if stream_config.kind == "schedule":
        mixture_schedule = mixture_schedule or MixtureSchedule()
    if stream_config.kind == "learned":
        learned_mixing = learned_mixing or LearnedMixingConfig()

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    data_config = dataclasses.replace(data_config, seed=_agreed_seed(data_config.seed))

    data = prepare_data(model_dir, data_config, vocab_config, progress=progress and is_main)
    arch = model_config.resolve(data.vocabulary.vocab_size)
    vocab_file = vocab_lib.vocabulary_file(vocab_config) if hasattr(vocab_lib, "vocabulary_file") else VOCAB_FILE
    run_info = {
        "model": config_to_dict(arch),
        "vocabulary": vocab_file,
        "num_sentinels": vocab_config.num_sentinels,
        "inputs_length": data_config.inputs_length,
        "targets_length": data_config.targets_length,
        "objective": data_config.objective,
        "languages": list(data.languages),
        "data_source": data_config.source,
        "decoder_attention": data_config.decoder_attention,
        "mode_tokens": data.mode_tokens,
        "translation_rate": data_config.translation_rate,
    }
    _check_resumable(model_dir, run_info)
    if is_main:
        write_atomic(model_dir / RUN_FILE, json.dumps(run_info, indent=2, ensure_ascii=False) + "\n")
    vocabulary_sha256 = resume.file_fingerprint(model_dir / vocab_file)
    data_identity = resume.data_identity(data_config, data.mixture, jax.process_count())
    data_identity["stream"] = stream_identity(stream_config, mixture_schedule if stream_config.kind == "schedule"
                                              else None, learned_mixing if stream_config.kind == "learned" else None)

    mesh = partitioning.create_mesh(mesh_config)
    rules = mesh_config.rules
    store = CheckpointStore(model_dir / CHECKPOINT_DIR, checkpoint_config)
    start_step = store.latest_step() or 0
    saved_meta = store.metadata(start_step) if start_step else {}
    if start_step:
        resume.check_resume(saved_meta, vocabulary_sha256=vocabulary_sha256, data=data_identity,
                            where=f"{store.directory}/{start_step}")
    position = saved_meta.get("data_position", {})
    expected = position.get("fingerprints", [None] * jax.process_count())[jax.process_index()] if position else None
    # Building the seqio pipeline (graph construction, shuffle buffers) overlaps model compilation.
    # A resumed stream restarts one batch early so the checkpoint's last batch can be verified.
    shard_info = seqio.ShardInfo(jax.process_index(), jax.process_count())
    loader = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    opening = loader.submit(
        open_batch_source, stream_config, data.mixture, data_config, shard_info, model_config.architecture,
        start_step=start_step, expected_fingerprint=expected, saved_state=saved_meta.get("batch_source"),
        where=f"{store.directory}/{start_step}", schedule=mixture_schedule, learned=learned_mixing,
    )
    optimizer, schedule = make_optimizer(optimizer_config, train_config.num_steps)
    sharded = create_sharded_state(arch, optimizer, mesh, rules, train_config.seed)
    state = sharded.state
    if not start_step and init_config.checkpoint:
        state, report = initialize_from(init_config, state)
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
            print(f"resumed from {store.directory}/{start_step}")
    gin_config = gin.operative_config_str()
    if is_main:
        write_atomic(model_dir / CONFIG_FILE, gin_config)
        _truncate_metrics(model_dir / METRICS_FILE, start_step)

    step_fn = compile_train_step(
        sharded, optimizer, schedule, train_config.z_loss, mesh, rules, train_config.loss_chunk_length,
        loss_options=train_config.loss_options(), microbatches=train_config.microbatches,
        skip_nonfinite=train_config.nonfinite == "skip",
    )
    batch_sharding = partitioning.batch_sharding(mesh, rules)
    source = opening.result()
    loader.shutdown()
    loss_sums_fn, row_nll_fn = compile_scoring(sharded, mesh, rules)

    replicated = partitioning.replicated(mesh)

    def to_global(local: dict[str, np.ndarray], replicate: bool = False) -> dict[str, jax.Array]:
        """Host-local rows -> one global batch (sharded like training, or the same rows on every device)."""
        if replicate:
            return {k: jax.make_array_from_process_local_data(replicated, v, v.shape) for k, v in local.items()}
        return {k: jax.make_array_from_process_local_data(batch_sharding, v) for k, v in local.items()}

    def loss_sums(local: dict[str, np.ndarray]) -> tuple[float, float]:
        nll, tokens = loss_sums_fn(state.params, to_global(local))
        return float(nll), float(tokens)

    def mean_loss(local: dict[str, np.ndarray]) -> float:
        nll, tokens = loss_sums(local)
        return nll / max(tokens, 1.0)

    def row_nll(local: dict[str, np.ndarray]) -> np.ndarray:
        out = row_nll_fn(state.params, to_global(local, replicate=True))
        return np.asarray(out.addressable_data(0))

    heldout: dict[str, Any] = {}

    def evaluate(done: int) -> dict[str, float]:
        """Held-out metrics at step `done`; the held-out text is read at the first evaluation."""
        if not heldout:
            heldout["batches"], missing = heldout_task_batches(
                data.mixture, data_config, eval_config, shard_info, model_config.architecture)
            heldout["documents"] = heldout_documents(data.corpus, data.languages, eval_config.split,
                                                     eval_config.max_documents) if eval_config.bits_per_byte else {}
            if missing and is_main:
                print(f"eval: {len(missing)} task(s) have no {eval_config.split!r} split and are not scored: "
                      f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        scores = evaluate_heldout(
            heldout["batches"], loss_sums, heldout["documents"], row_nll, vocabulary=data.vocabulary,
            data_config=data_config, architecture=model_config.architecture, scoring=scoring_settings(run_info),
        )
        if eval_config.decode_examples and jax.process_count() == 1:
            model = {"info": run_info, "config": arch, "vocabulary": data.vocabulary, "graphdef": sharded.graphdef,
                     "rest": sharded.rest, "params": state.params, "step": done}
            scores.update(decoding_metrics(list(heldout["batches"]), model, eval_config, data_config.batch_size))
        return scores

    tokens_per_step = data_config.batch_size * (data_config.inputs_length + data_config.targets_length)
    flops_per_device, peak = _throughput_basis(arch, data_config, train_config, mesh)
    if is_main and peak:
        print(f"MFU against {peak[0] / 1e12:.3g} TFLOP/s per device ({peak[1]})")
    writer = MetricsWriter(model_dir / METRICS_FILE, model_dir / TENSORBOARD_DIR)
    names = leaf_names(state.params)

    interval = IntervalMeans()
    interval.restore(saved_meta.get("pending_metrics", []))
    spikes = LossSpikes(factor=train_config.loss_spike_factor)
    spikes.restore(saved_meta.get("loss_spikes", {}))
    skipped = int(saved_meta.get("skipped_steps", 0))
    last_logged = saved_meta.get("last_logged", {})

    def check_finite(done: int) -> None:
        """Reads the pending steps' finiteness; stops (policy "stop") or counts skipped steps."""
        nonlocal skipped
        pending = interval.fetch()
        first = done - len(pending)
        found = _nonfinite_message(pending, first, names)
        if found is None:
            return
        bad_step, what = found
        if train_config.nonfinite == "stop":
            raise FloatingPointError(
                f"non-finite values at step {bad_step}: {what}; stopped (TrainConfig.nonfinite='stop') "
                f"without saving it; the last checkpoint ({store.latest_step()}) is intact"
            )
        count = sum(1 for m in pending if not bool(m["finite"]))
        skipped += count
        if is_main:
            print(f"skipped {count} non-finite update(s) in steps {first + 1}..{done}, first at step {bad_step}: {what}")

    def metadata(done: int, fingerprint: str) -> dict[str, Any]:
        return {
            "run": run_info,
            "data_seed": data_config.seed,
            "data": data_identity,
            "data_position": {
                "step": done,
                "batches_per_host": done,
                "host_batch_size": data_config.batch_size // jax.process_count(),
                "fingerprints": resume.gather_fingerprints(fingerprint),
            },
            "vocabulary_file": vocab_file,
            "vocabulary_sha256": vocabulary_sha256,
            "gin_config": gin_config,
            "batch_source": source.state_dict(),
            "pending_metrics": interval.pending(),
            "loss_spikes": spikes.state(),
            "skipped_steps": skipped,
            "last_logged": last_logged,
        }

    def save(done: int, fingerprint: str, force: bool = False) -> None:
        if not force and not store.should_save(done):
            return
        if len(interval):
            check_finite(done)
        ranking = {k: v for k, v in last_logged.items() if isinstance(v, (int, float))} or None
        store.save(done, state.params, state.opt_state, metadata(done, fingerprint), force=True,
                   metrics=ranking if checkpoint_config.best_metric else None)

    history: list[dict[str, Any]] = []
    eval_history: list[dict[str, Any]] = []
    bar = tqdm(
        total=train_config.num_steps, initial=start_step, disable=not (progress and is_main), unit="step",
        dynamic_ncols=True,
    )
    last_time, last_step, compile_time = time.perf_counter(), start_step, None
    final_step, preempted, fingerprint = start_step, False, expected or ""
    try:
        with _Preemption() as preemption, jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            for step in range(start_step, train_config.num_steps):
                local = source.next(step)
                fingerprint = resume.batch_fingerprint(local)
                fresh = source.measurement_batch(step)
                loss_before = mean_loss(fresh) if fresh is not None else None
                state, metrics = step_fn(state, to_global(local))
                if fresh is not None:
                    source.report(step, loss_before, mean_loss(fresh))
                interval.add(metrics)
                done = step + 1
                if compile_time is None:
                    jax.block_until_ready(metrics)
                    compile_time = time.perf_counter() - last_time
                    last_time, last_step = time.perf_counter(), done
                if done % train_config.log_every == 0 or done == train_config.num_steps:
                    check_finite(done)
                    values = interval.summarize()
                    spikes.update(values["step_losses"])
                    now = time.perf_counter()
                    step_time = (now - last_time) / max(done - last_step, 1) if done > last_step else compile_time
                    last_time, last_step = now, done
                    record = {
                        "step": done,
                        "loss": values["loss"],
                        "nll": values["nll"],
                        "learning_rate": values["learning_rate"],
                        "grad_norm": values["grad_norm"],
                        "target_tokens": int(values["num_tokens"]),
                        "loss_spikes": spikes.count,
                        "skipped_steps": skipped,
                        "tokens_per_sec": tokens_per_step / step_time,
                        "step_time_s": step_time,
                        "tflops_per_device": flops_per_device / step_time / 1e12,
                    }
                    if peak:
                        record["mfu"] = flops_per_device / step_time / peak[0]
                    record.update(source.metrics(done))
                    last_logged = {"step": done, "loss": record["loss"], "nll": record["nll"]}
                    history.append(record)
                    writer.write(record)
                    if is_main:
                        bar.write(console_line(record))
                        sys.stdout.flush()
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                if eval_config.due(done, train_config.num_steps):
                    eval_start = time.perf_counter()
                    scores = evaluate(done)
                    last_time += time.perf_counter() - eval_start  # keep eval out of the step timings
                    eval_history.append({"step": done, **scores})
                    writer.write({"step": done, **scores})
                    if is_main:
                        bpb = f", bits/byte {scores['eval/bits_per_byte']:.3f}" if "eval/bits_per_byte" in scores else ""
                        bar.write(f"eval step {done}: held-out loss {scores.get('eval/loss', float('nan')):.4f}{bpb}")
                bar.update(1)
                final_step = done
                if preemption.agreed():
                    save(done, fingerprint, force=True)
                    store.wait()
                    preempted = True
                    if is_main:
                        print(f"preempted (SIGTERM): saved step {done} in {store.directory}; rerun to resume")
                    break
                save(done, fingerprint)
            if not preempted and store.latest_step() != final_step:
                save(final_step, fingerprint, force=True)
    finally:
        bar.close()
        writer.close()
        store.close()
    if is_main and history:
        plot_run(model_dir)
    return {
        "model_dir": str(model_dir),
        "start_step": start_step,
        "final_step": final_step,
        "preempted": preempted,
        "compile_time_s": compile_time,
        "history": history,
        "eval_history": eval_history,
    }


def load_params(model_dir: str | Path, step: int | None = None):
    """Rebuilds the model config, vocabulary and restored parameters (replicated) of a trained run."""
    model_dir = Path(model_dir)
    info = read_run_info(model_dir)
    arch = config_from_dict(info["model"])
    vocabulary = vocab_lib.load_vocabulary(model_dir / info["vocabulary"], info["num_sentinels"])
    graphdef, abstract_params = abstract_split(arch)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), nnx.to_pure_dict(abstract_params)
    )
    store = CheckpointStore(model_dir / CHECKPOINT_DIR, read_only=True)
    try:
        restored = store.restore(step, abstract)
    finally:
        store.close()
    return {
        "info": info,
        "config": arch,
        "vocabulary": vocabulary,
        "graphdef": graphdef,
        "rest": non_param_state(arch),
        "params": restored["params"],
        "step": restored["step"],
    }
