"""`lowres bench train`: steady-state training throughput and MFU of a named shape.

The step is the trainer's own (`create_sharded_state` + `compile_train_step`), fed the way the
trainer feeds it: host batches from the seqio pipeline (a UL2 mixture over the built-in corpus)
put on the mesh every step. `--synthetic` swaps in random full-length batches of the same shape.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lowres.bench import report
from lowres.training import peak
from lowres.errors import ConfigError, NonFiniteError, UsageError

DATA_VOCAB_SIZE = 4000  # SentencePiece pieces trained on the built-in corpus for real-data runs
QUICKSTART_GIN = Path(__file__).resolve().parents[2] / "gin_configs" / "quickstart.gin"


@dataclasses.dataclass(frozen=True)
class Shape:
    """A benchmarked model and batch: `inputs_length + targets_length` is a decoder's sequence length."""

    name: str
    architecture: str
    preset: str
    vocab_size: int
    inputs_length: int
    targets_length: int
    batch_size: int
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    objective: str = "ul2"
    description: str = ""

    def model_config(self):
        from lowres.models.architecture import ModelConfig

        return ModelConfig(self.architecture, self.preset, overrides=dict(self.overrides)).resolve(self.vocab_size)

    @property
    def record(self):
        """The shape's models.architecture.Architecture."""
        from lowres.models.architecture import architecture_for

        return architecture_for(self.architecture)

    def tokens_per_step(self) -> int:
        return self.record.tokens_per_step(self.batch_size, self.inputs_length, self.targets_length)

    def flops_per_step(self) -> float:
        return self.record.training_flops(self.model_config(), self.batch_size, self.inputs_length,
                                          self.targets_length)


REF_WIDTHS = dict(d_model=256, num_heads=4, head_dim=64, d_ff=1024, activation="silu")

SHAPES: dict[str, Shape] = {
    # Unrolled layers: at depth 4 the scanned stack's step takes 3-5% longer (15% before projections merged
    # batch and length; XLA cannot fuse across scan iterations and copies saved activations into stacks).
    "maxtext-ref": Shape(
        "maxtext-ref", "decoder_only", "maxtext-ref", vocab_size=32000, inputs_length=128, targets_length=128,
        batch_size=4, overrides=dict(scan_layers=False),
        description="MaxText's small benchmark decoder: 4 layers (unrolled), d_model 256, seq 256, batch 4",
    ),
    "t5-ref": Shape(
        "t5-ref", "encoder_decoder", "mini", vocab_size=32000, inputs_length=256, targets_length=128, batch_size=4,
        overrides=dict(REF_WIDTHS, num_encoder_layers=4, num_decoder_layers=4), objective="r_and_s",
        # UL2's R- and S-denoisers: its 50%-noise X-denoisers need targets of 254 tokens at inputs 256.
        description="encoder-decoder at maxtext-ref widths, 4+4 layers, inputs 256 / targets 128, batch 4",
    ),
    # Accelerator shapes (benchmarks/gpu.sh): Llama-style decoders, bfloat16 compute, sequence 2048.
    "decoder-125m": Shape(
        "decoder-125m", "decoder_only", "maxtext-ref", vocab_size=32000, inputs_length=1024, targets_length=1024,
        batch_size=16, overrides=dict(d_model=768, num_heads=12, num_kv_heads=12, head_dim=64, d_ff=2048,
                                      num_layers=12, dtype="bfloat16"),
        description="decoder-only, 12 layers, d_model 768, seq 2048, batch 16, bfloat16 (134M parameters)",
    ),
    "decoder-350m": Shape(
        "decoder-350m", "decoder_only", "maxtext-ref", vocab_size=32000, inputs_length=1024, targets_length=1024,
        batch_size=16, overrides=dict(d_model=1024, num_heads=16, num_kv_heads=16, head_dim=64, d_ff=2816,
                                      num_layers=24, dtype="bfloat16"),
        description="decoder-only, 24 layers, d_model 1024, seq 2048, batch 16, bfloat16 (374M parameters)",
    ),
    "decoder-1b": Shape(
        "decoder-1b", "decoder_only", "maxtext-ref", vocab_size=32000, inputs_length=1024, targets_length=1024,
        batch_size=8, overrides=dict(d_model=2048, num_heads=16, num_kv_heads=16, head_dim=128, d_ff=5632,
                                     num_layers=18, dtype="bfloat16"),
        description="decoder-only, 18 layers, d_model 2048, seq 2048, batch 8, bfloat16 (1.06B parameters)",
    ),
    # Seconds-long smoke shapes (tests, `--synthetic` checks of the suite itself).
    "tiny": Shape(
        "tiny", "decoder_only", "tiny", vocab_size=4200, inputs_length=16, targets_length=16, batch_size=2,
        description="decoder-only tiny preset, for smoke tests",
    ),
    "tiny-t5": Shape(
        "tiny-t5", "encoder_decoder", "tiny", vocab_size=4200, inputs_length=32, targets_length=16, batch_size=2,
        description="encoder-decoder tiny preset, for smoke tests",
    ),
}  # fmt: skip


def quickstart_shape() -> Shape:
    """The shape gin_configs/quickstart.gin trains, read from the file itself."""
    import gin

    import lowres.training.trainer  # noqa: F401  (registers the configurables)
    from lowres.data.config import DataConfig
    from lowres.data.vocab.vocabulary import VocabularyConfig
    from lowres.models.architecture import ModelConfig

    gin.clear_config()
    try:
        gin.parse_config_file(str(QUICKSTART_GIN), skip_unknown=True)
        model, data, vocab = ModelConfig(), DataConfig(), VocabularyConfig()
    finally:
        gin.clear_config()
    return Shape(
        "quickstart", model.architecture, model.preset, vocab_size=vocab.vocab_size + vocab.num_sentinels,
        overrides=dict(model.overrides),
        inputs_length=data.inputs_length, targets_length=data.targets_length, batch_size=data.batch_size,
        objective=data.objective, description="gin_configs/quickstart.gin",
    )  # fmt: skip


def with_model_options(shape: Shape, dtype: str | None = None, attention: str | None = None) -> Shape:
    """`shape` with its compute dtype and attention implementation replaced where given (--dtype, --attention)."""
    changed = {k: v for k, v in (("dtype", dtype), ("attention", attention)) if v is not None}
    if not changed:
        return shape
    shape = dataclasses.replace(shape, overrides={**shape.overrides, **changed})
    shape.model_config()  # a bad value fails here, as one line, before anything is compiled
    return shape


def get_shape(name: str) -> Shape:
    if name == "quickstart":
        return quickstart_shape()
    if name not in SHAPES:
        raise UsageError(f"unknown benchmark shape {name!r}; choose one of {sorted(SHAPES) + ['quickstart']}")
    return SHAPES[name]


def synthetic_batches(shape: Shape, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Endless random batches with the packed features of the shape's seqio feature converter."""
    rng = np.random.default_rng(seed)
    b = shape.batch_size
    low = 2  # past pad and EOS
    if shape.record.decoder_only:
        lengths = {"decoder": shape.inputs_length + shape.targets_length}
    else:
        lengths = {"encoder": shape.inputs_length, "decoder": shape.targets_length}
    while True:
        batch = {}
        for side, length in lengths.items():
            positions = np.broadcast_to(np.arange(length, dtype=np.int32), (b, length)).copy()
            batch[f"{side}_segment_ids"] = np.ones((b, length), np.int32)
            batch[f"{side}_positions"] = positions
        if "encoder" in lengths:
            batch["encoder_input_tokens"] = rng.integers(low, shape.vocab_size, (b, lengths["encoder"]), np.int32)
        length = lengths["decoder"]
        targets = rng.integers(low, shape.vocab_size, (b, length), np.int32)
        batch["decoder_target_tokens"] = targets
        batch["decoder_input_tokens"] = np.pad(targets[:, :-1], ((0, 0), (1, 0)))
        weights = np.ones((b, length), np.int32)
        if shape.record.decoder_only:
            prefix = np.zeros((b, length), np.int32)
            prefix[:, : shape.inputs_length] = 1
            batch["decoder_causal_attention"] = prefix
            weights = 1 - prefix
        batch["decoder_loss_weights"] = weights
        yield batch


def real_batches(shape: Shape, seed: int = 0, objective: str | None = None, shuffle_buffer_size: int = 256,
                 pipeline: str = "auto") -> Iterator[dict[str, np.ndarray]]:
    """The trainer's stream for `shape`: a temperature mixture of every built-in language, packed, read
    by the `pipeline` executor (DataConfig.pipeline)."""
    import seqio

    from lowres.data.text.builtin_corpus import default_cache_dir
    from lowres.data.config import DataConfig
    from lowres.data.streams.pipeline import training_batches
    from lowres.data.tasks.prepare import prepare_data
    from lowres.data.vocab.vocabulary import VocabularyConfig

    config = DataConfig(
        objective=objective or shape.objective, inputs_length=shape.inputs_length,
        targets_length=shape.targets_length, batch_size=shape.batch_size, shuffle_buffer_size=shuffle_buffer_size,
        seed=seed, pipeline=pipeline,
    )  # fmt: skip
    vocab_config = VocabularyConfig(vocab_size=DATA_VOCAB_SIZE)
    data = prepare_data(default_cache_dir() / "bench" / f"spm{DATA_VOCAB_SIZE}", config, vocab_config, progress=False)
    if data.vocabulary.vocab_size > shape.vocab_size:
        raise ConfigError(
            f"shape {shape.name}: its {shape.vocab_size}-entry output layer cannot hold the data vocabulary's "
            f"{data.vocabulary.vocab_size} ids"
        )
    return training_batches(data.mixture, config, seqio.ShardInfo(0, 1), 0, shape.record.feature_converter(config.pack))


def run(shape: Shape, steps: int = 20, *, synthetic: bool = False, warmup_steps: int = 2, peak_size: int = 2048,
        loss_chunk_length: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Compiles the trainer's step for `shape`, runs `warmup_steps` then `steps` timed steps.

    The peak FLOP/s (MFU's denominator) is taken first: a `peak_size` square matmul off accelerators.
    """
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    import jax
    from flax import nnx

    from lowres.models import partitioning
    from lowres.training.optimizer import OptimizerConfig, make_optimizer
    from lowres.training.trainer import compile_train_step, create_sharded_state

    arch = shape.model_config()
    peak_flops, peak_source = peak.device_peak_flops(dtype=arch.dtype, size=peak_size)
    mesh_config = partitioning.MeshConfig()
    mesh, rules = partitioning.create_mesh(mesh_config), mesh_config.rules
    optimizer, schedule = make_optimizer(OptimizerConfig(), steps + warmup_steps + 1)
    start = time.perf_counter()
    batches = synthetic_batches(shape) if synthetic else real_batches(shape)
    first = next(batches)
    data_start_s = time.perf_counter() - start
    log(f"[train {shape.name}] data ready in {data_start_s:.1f}s ({'synthetic' if synthetic else 'UL2 mixture'})")
    sharded = create_sharded_state(arch, optimizer, mesh, rules, seed=0)
    batch_sharding = partitioning.batch_sharding(mesh, rules)
    to_device = lambda local: {k: jax.make_array_from_process_local_data(batch_sharding, v) for k, v in local.items()}  # noqa: E731
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        jitted = compile_train_step(sharded, optimizer, schedule, 1e-4, mesh, rules, loss_chunk_length)
        start = time.perf_counter()
        compiled = jitted.lower(sharded.state, to_device(first)).compile()
        compile_time = time.perf_counter() - start
        log(f"[train {shape.name}] compiled in {compile_time:.1f}s")
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        state, losses, times, waits, cpu_times = sharded.state, [], [], [], []
        pending = first
        for i in range(warmup_steps + steps):
            t0, c0 = time.perf_counter(), time.process_time()
            local = pending if pending is not None else next(batches)
            pending = None
            t1 = time.perf_counter()
            state, metrics = compiled(state, to_device(local))
            loss = float(jax.device_get(metrics["loss"]))
            t2, c2 = time.perf_counter(), time.process_time()
            losses.append(loss)
            if i >= warmup_steps:
                times.append(t2 - t0)
                cpu_times.append(c2 - c0)
                waits.append(t1 - t0)
                done = len(times)
                if done % 5 == 0 or done == steps:
                    eta = (steps - done) * float(np.median(times))
                    log(f"[train {shape.name}] step {done}/{steps}: {t2 - t0:.3f}s, loss {loss:.3f}, ETA {eta:.0f}s")
    if not np.isfinite(losses[-1]):
        raise NonFiniteError(f"benchmark shape {shape.name}: non-finite loss {losses[-1]}")
    stats = report.step_stats(times)
    tokens = shape.tokens_per_step()
    flops_per_step = shape.flops_per_step()
    machine = report.machine_fields()
    cpu_fields = {}
    if jax.devices()[0].platform == "cpu":
        # Per CPU-second of this process: stable when other jobs share the cores, unlike wall time.
        matmul_rate = peak.matmul_flops_per_cpu_second(arch.dtype, size=peak_size)
        step_cpu = float(np.median(cpu_times))
        cpu_fields = {"gflops_per_cpu_second": flops_per_step / step_cpu / 1e9,
                      "matmul_gflops_per_cpu_second": matmul_rate / 1e9,
                      "mfu_per_cpu_second": flops_per_step / step_cpu / matmul_rate}
    return report.result(
        "train",
        **report.throughput(tokens, flops_per_step, stats["step_time_median_s"], machine["num_devices"], peak_flops),
        peak_gflops=peak_flops / 1e9,
        peak_source=peak_source,
        **stats,
        compile_time_s=compile_time,
        peak_rss_mb=report.peak_rss_mb(),
        **machine,
        shape=shape.name,
        architecture=shape.architecture,
        params=arch.num_params(),
        dtype=arch.dtype,
        attention=arch.attention,
        batch_size=shape.batch_size,
        inputs_length=shape.inputs_length,
        targets_length=shape.targets_length,
        tokens_per_step=tokens,
        flops_per_step=flops_per_step,
        xla_flops_per_step=float(cost.get("flops", 0.0)) if cost else None,
        data="synthetic" if synthetic else f"builtin {shape.objective} mixture, packed",
        data_start_s=data_start_s,
        data_wait_median_s=float(np.median(waits)),
        # CPU-seconds per step over all threads: less sensitive than wall time to a shared machine.
        step_cpu_time_median_s=float(np.median(cpu_times)),
        **cpu_fields,
        loss_first=losses[0],
        loss_last=losses[-1],
    )


TABLE_COLUMNS = ("shape", "dtype", "attention", "tokens_per_sec", "tflops_per_device", "mfu", "mfu_per_cpu_second", "step_time_median_s",
                 "step_time_spread", "compile_time_s", "peak_rss_mb", "load_average")
