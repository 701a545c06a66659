"""The training job: sharded state creation, the jitted step, the loop, metrics and checkpoints."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import itertools
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gin
import jax
import jax.numpy as jnp
import optax
import seqio
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from tqdm.auto import tqdm

from lowres.data import vocab as vocab_lib
from lowres.data.pipeline import DataConfig, training_batches
from lowres.data.prepare import VOCAB_FILE, prepare_data
from lowres.models.factory import (
    ModelConfig,
    abstract_split,
    build_model,
    config_from_dict,
    config_to_dict,
    non_param_state,
)
from lowres.training import partitioning
from lowres.training.checkpoints import CheckpointConfig, CheckpointStore
from lowres.training.metrics import IntervalMeans, MetricsWriter, console_line
from lowres.training.optimizer import OptimizerConfig, make_optimizer
from lowres.training.step import TrainState, train_step

RUN_FILE = "lowres.json"  # what evaluation needs to rebuild the model: config, vocabulary, lengths
CONFIG_FILE = "config.gin"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"


@gin.configurable
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    num_steps: int = 1000
    log_every: int = 10
    z_loss: float = 1e-4
    # > 0: unembed and compute the loss in sequence chunks of this length (large vocabularies).
    loss_chunk_length: int = 0
    seed: int = 0


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
    sharded: ShardedState, optimizer, schedule, z_loss: float, mesh: Mesh, rules, loss_chunk_length: int = 0
):
    """The jitted step with explicit in/out shardings; the old state's buffers are donated."""
    step = functools.partial(
        train_step,
        graphdef=sharded.graphdef,
        rest=sharded.rest,
        optimizer=optimizer,
        schedule=schedule,
        z_loss=z_loss,
        dropout_seed=sharded.dropout_seed,
        loss_chunk_length=loss_chunk_length,
    )
    return jax.jit(
        step,
        in_shardings=(sharded.shardings, partitioning.batch_sharding(mesh, rules)),
        out_shardings=(sharded.shardings, partitioning.replicated(mesh)),
        donate_argnums=(0,),
    )


def _peek(iterator):
    """Pulls the first item (paying the pipeline's start-up cost) and returns the whole stream."""
    first = next(iterator)
    return itertools.chain([first], iterator)


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
    progress: bool = True,
) -> dict[str, Any]:
    """Trains (or resumes) in `model_dir`; configs default to their gin-bound values."""
    train_config = train_config or TrainConfig()
    data_config = data_config or DataConfig()
    model_config = model_config or ModelConfig()
    optimizer_config = optimizer_config or OptimizerConfig()
    checkpoint_config = checkpoint_config or CheckpointConfig()
    mesh_config = mesh_config or partitioning.MeshConfig()
    vocab_config = vocab_config or vocab_lib.VocabularyConfig()

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0

    data = prepare_data(model_dir, data_config, vocab_config, progress=progress and is_main)
    arch = model_config.resolve(data.vocabulary.vocab_size)
    run_info = {
        "model": config_to_dict(arch),
        "vocabulary": VOCAB_FILE,
        "num_sentinels": vocab_config.num_sentinels,
        "inputs_length": data_config.inputs_length,
        "targets_length": data_config.targets_length,
        "objective": data_config.objective,
        "languages": list(data.languages),
        "data_source": data_config.source,
    }
    _check_resumable(model_dir, run_info)
    if is_main:
        write_atomic(model_dir / RUN_FILE, json.dumps(run_info, indent=2, ensure_ascii=False) + "\n")

    mesh = partitioning.create_mesh(mesh_config)
    rules = mesh_config.rules
    store = CheckpointStore(model_dir / CHECKPOINT_DIR, checkpoint_config)
    start_step = store.latest_step() or 0
    # Building the seqio pipeline (graph construction, shuffle buffers) overlaps model compilation.
    shard_info = seqio.ShardInfo(jax.process_index(), jax.process_count())
    loader = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    first_batches = loader.submit(
        lambda: _peek(
            training_batches(data.mixture, data_config, shard_info, start_step, model_config.architecture)
        )
    )
    optimizer, schedule = make_optimizer(optimizer_config, train_config.num_steps)
    sharded = create_sharded_state(arch, optimizer, mesh, rules, train_config.seed)
    state = sharded.state
    if start_step:
        restored = store.restore(start_step, sharded.abstract.params, sharded.abstract.opt_state)
        state = TrainState(
            step=jnp.asarray(start_step, jnp.int32), params=restored["params"], opt_state=restored["opt_state"]
        )
        if is_main:
            print(f"resumed from {store.directory}/{start_step}")
    if is_main:
        write_atomic(model_dir / CONFIG_FILE, gin.operative_config_str())

    step_fn = compile_train_step(
        sharded, optimizer, schedule, train_config.z_loss, mesh, rules, train_config.loss_chunk_length
    )
    batch_sharding = partitioning.batch_sharding(mesh, rules)
    batches = first_batches.result()
    loader.shutdown()
    tokens_per_step = data_config.batch_size * (data_config.inputs_length + data_config.targets_length)
    writer = MetricsWriter(model_dir / METRICS_FILE)
    metadata = {"run": run_info, "data_seed": data_config.seed}

    history: list[dict[str, Any]] = []
    bar = tqdm(
        total=train_config.num_steps, initial=start_step, disable=not (progress and is_main), unit="step",
        dynamic_ncols=True,
    )
    last_time, last_step, compile_time = time.perf_counter(), start_step, None
    interval = IntervalMeans()
    try:
        with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            for step in range(start_step, train_config.num_steps):
                local = next(batches)
                batch = {
                    k: jax.make_array_from_process_local_data(batch_sharding, v) for k, v in local.items()
                }
                state, metrics = step_fn(state, batch)
                interval.add(metrics)
                done = step + 1
                if compile_time is None:
                    jax.block_until_ready(metrics)
                    compile_time = time.perf_counter() - last_time
                    last_time, last_step = time.perf_counter(), done
                if done % train_config.log_every == 0 or done == train_config.num_steps:
                    values = interval.summarize()
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
                        "tokens_per_sec": tokens_per_step / step_time,
                        "step_time_s": step_time,
                    }
                    if not math.isfinite(record["loss"]):
                        raise FloatingPointError(
                            f"non-finite loss at step {done}; the last checkpoint "
                            f"({store.latest_step()}) is intact"
                        )
                    history.append(record)
                    writer.write(record)
                    if is_main:
                        bar.write(console_line(record))
                        sys.stdout.flush()
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                bar.update(1)
                store.save(done, state.params, state.opt_state, metadata)
            final_step = int(jax.device_get(state.step))
            if store.latest_step() != final_step:
                store.save(final_step, state.params, state.opt_state, metadata, force=True)
    finally:
        bar.close()
        writer.close()
        store.close()
    return {
        "model_dir": str(model_dir),
        "start_step": start_step,
        "final_step": final_step,
        "compile_time_s": compile_time,
        "history": history,
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
