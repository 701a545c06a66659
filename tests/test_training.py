"""The trainer's parts: the step learns, checkpoints round-trip, sharding does not change results."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lowres.models.architecture import ModelConfig
from lowres.models import partitioning
from lowres.checkpoints.store import CheckpointConfig, CheckpointStore
from lowres.training.optimizer import OptimizerConfig, learning_rate_schedule, make_optimizer
from lowres.training.trainer import compile_train_step, create_sharded_state


def fixed_batch(batch_size=4, length=16, vocab_size=64, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, vocab_size - 8, size=(batch_size, length)).astype(np.int32)
    dec_in = np.zeros_like(tokens)
    dec_in[:, 1:] = tokens[:, :-1]
    ones = np.ones_like(tokens)
    pos = np.broadcast_to(np.arange(length, dtype=np.int32), tokens.shape).copy()
    return {
        "encoder_input_tokens": tokens[:, ::-1].copy(),
        "decoder_input_tokens": dec_in,
        "decoder_target_tokens": tokens,
        "decoder_loss_weights": ones,
        "encoder_segment_ids": ones,
        "decoder_segment_ids": ones,
        "encoder_positions": pos,
        "decoder_positions": pos,
    }


def _setup(num_steps=30):
    arch = ModelConfig(preset="tiny").resolve(vocab_size=64)
    optimizer, schedule = make_optimizer(OptimizerConfig(learning_rate=1e-2, warmup_steps=0), num_steps)
    mesh_config = partitioning.MeshConfig()
    mesh = partitioning.create_mesh(mesh_config, jax.devices()[:1])
    sharded = create_sharded_state(arch, optimizer, mesh, mesh_config.rules, seed=0)
    step = compile_train_step(sharded, optimizer, schedule, 1e-4, mesh, mesh_config.rules)
    return sharded, step


def test_train_step_reduces_loss_on_a_fixed_batch():
    sharded, step = _setup()
    state, batch = sharded.state, fixed_batch()
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 30
    assert losses[-1] < 0.5 * losses[0], losses


def test_checkpoint_save_then_restore_gives_identical_state(tmp_path):
    sharded, step = _setup()
    state = sharded.state
    for _ in range(3):
        state, _ = step(state, fixed_batch())
    store = CheckpointStore(tmp_path / "ckpt", CheckpointConfig(save_interval_steps=1))
    store.save(3, state.params, state.opt_state, {"note": "x"}, force=True)
    store.close()
    reopened = CheckpointStore(tmp_path / "ckpt", read_only=True)
    assert reopened.latest_step() == 3
    restored = reopened.restore(None, sharded.abstract.params, sharded.abstract.opt_state)
    reopened.close()
    assert restored["step"] == 3 and restored["metadata"] == {"note": "x"}
    for a, b in zip(jax.tree.leaves((state.params, state.opt_state)),
                    jax.tree.leaves((restored["params"], restored["opt_state"]))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_schedule_warms_up_then_decays():
    schedule = learning_rate_schedule(OptimizerConfig(learning_rate=1.0, warmup_steps=10, schedule="cosine",
                                                      end_learning_rate_fraction=0.1), 110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == pytest.approx(1.0)
    assert float(schedule(110)) == pytest.approx(0.1, abs=1e-6)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule(OptimizerConfig(schedule="bogus"), 10)


def test_mesh_config_fills_and_rejects():
    assert partitioning.MeshConfig(data=-1, tensor=2).shape(8) == (4, 1, 2)
    with pytest.raises(ValueError, match="devices"):
        partitioning.MeshConfig(data=3, fsdp=1, tensor=1).shape(8)


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np
    from lowres.models import partitioning
    from lowres.models.architecture import ModelConfig
    from lowres.training.optimizer import OptimizerConfig, make_optimizer
    from lowres.training.trainer import compile_train_step, create_sharded_state
    from tests.test_training import fixed_batch

    assert jax.device_count() == 8
    results = {}
    runs = [
        (f"{a}/{m}", a, d, c, 1)
        for a in ("encoder_decoder", "decoder_only")
        for m, d, c in [("single", jax.devices()[:1], partitioning.MeshConfig()),
                        ("mesh", jax.devices(), partitioning.MeshConfig(data=2, fsdp=2, tensor=2))]
    ]
    # 4 strided microbatches of 2 rows over a data*fsdp = 4-way batch split
    runs.append(("encoder_decoder/microbatched", "encoder_decoder", jax.devices(),
                 partitioning.MeshConfig(data=2, fsdp=2, tensor=2), 4))
    for name, architecture, devices, cfg, microbatches in runs:
        arch = ModelConfig(architecture=architecture, preset="tiny").resolve(vocab_size=64)
        optimizer, schedule = make_optimizer(OptimizerConfig(learning_rate=1e-2, warmup_steps=0), 10)
        mesh = partitioning.create_mesh(cfg, devices)
        sharded = create_sharded_state(arch, optimizer, mesh, cfg.rules, seed=0)
        step = compile_train_step(sharded, optimizer, schedule, 1e-4, mesh, cfg.rules, microbatches=microbatches)
        state, losses = sharded.state, []
        for i in range(3):
            batch = fixed_batch(batch_size=8, seed=i)
            if architecture == "decoder_only":
                batch = {k: v for k, v in batch.items() if not k.startswith("encoder")}
            state, metrics = step(state, batch)
            losses.append(float(metrics["loss"]))
        shardings = {str(s.spec) for s in jax.tree.leaves(jax.tree.map(lambda x: x.sharding, state.params))}
        results[name] = {"losses": losses, "params": [np.asarray(x).tolist() for x in jax.tree.leaves(state.params)],
                         "specs": sorted(shardings)}
    print("RESULT" + json.dumps(results))
    """
)


def test_sharded_step_equals_single_device_step():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT], env=env, cwd=root, capture_output=True,
                         text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT"))
    results = json.loads(line[len("RESULT"):])
    for architecture in ("encoder_decoder", "decoder_only"):
        single, mesh = results[f"{architecture}/single"], results[f"{architecture}/mesh"]
        assert any("tensor" in s for s in mesh["specs"]) and any("fsdp" in s for s in mesh["specs"])
        np.testing.assert_allclose(mesh["losses"], single["losses"], rtol=1e-5, atol=1e-6)
        # Adam divides by sqrt(v): reduction-order noise in near-zero gradients moves a parameter by
        # up to ~1e-4 of the lr=1e-2 step size; anything structural would differ by O(lr).
        for a, b in zip(mesh["params"], single["params"]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-4)
    # Gradient accumulation over strided microbatches equals the full batch.
    micro, full = results["encoder_decoder/microbatched"], results["encoder_decoder/single"]
    np.testing.assert_allclose(micro["losses"], full["losses"], rtol=1e-5, atol=1e-6)
    for a, b in zip(micro["params"], full["params"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=2e-4)


def test_microbatches_are_strided_rows():
    from lowres.training.step import split_microbatches

    batch = {"x": np.arange(8)[:, None] * np.ones((1, 3), np.int32)}
    split = np.asarray(split_microbatches(batch, 4)["x"])
    assert split.shape == (4, 2, 3)
    assert split[:, :, 0].tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]
    with pytest.raises(ValueError, match="not divisible by 3 microbatches"):
        split_microbatches(batch, 3)


@pytest.mark.parametrize("architecture,norm,dropout", [("decoder_only", "pre", 0.0), ("encoder_decoder", "mix", 0.1),
                                                       ("decoder_only", "lns", 0.1)])
def test_every_architecture_and_norm_trains_through_the_same_step(architecture, norm, dropout):
    import tensorflow as tf

    from lowres.models.architecture import architecture_for

    rng = np.random.default_rng(0)
    examples = [{"inputs": rng.integers(3, 60, 10).astype(np.int32), "targets": rng.integers(3, 60, 6).astype(np.int32)}
                for _ in range(16)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(examples),
        output_signature={"inputs": tf.TensorSpec([None], tf.int32), "targets": tf.TensorSpec([None], tf.int32)})
    batch = next(architecture_for(architecture).feature_converter()(dataset, {"inputs": 16, "targets": 16}).batch(4).as_numpy_iterator())
    arch = ModelConfig(architecture=architecture, preset="tiny", norm=norm,
                       overrides={"dropout_rate": dropout}).resolve(vocab_size=64)
    assert arch.norm == norm and arch.dropout_rate == dropout
    optimizer, schedule = make_optimizer(OptimizerConfig(learning_rate=1e-2, warmup_steps=0), 20)
    mesh_config = partitioning.MeshConfig()
    mesh = partitioning.create_mesh(mesh_config, jax.devices()[:1])
    sharded = create_sharded_state(arch, optimizer, mesh, mesh_config.rules, seed=0)
    step = compile_train_step(sharded, optimizer, schedule, 1e-4, mesh, mesh_config.rules)
    state, losses = sharded.state, []
    for _ in range(15):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_chunked_loss_equals_full_loss_and_gradients(architecture):
    from flax import nnx

    from lowres.models.architecture import build_model
    from lowres.models.losses import chunked_weighted_loss, model_inputs, weighted_loss

    arch = ModelConfig(architecture=architecture, preset="tiny").resolve(vocab_size=64)
    graphdef, params, rest = nnx.split(build_model(arch), nnx.Param, ...)
    batch = fixed_batch(batch_size=2, length=15)
    if architecture == "decoder_only":
        batch = {k: v for k, v in batch.items() if not k.startswith("encoder")}
    targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]

    def full(params):
        return weighted_loss(nnx.merge(graphdef, params, rest)(**model_inputs(batch)), targets, weights, 1e-4)[0]

    def chunked(params):
        model = nnx.merge(graphdef, params, rest)
        return chunked_weighted_loss(model.features(**model_inputs(batch)), model.unembed, targets, weights,
                                     1e-4, chunk_length=4)[0]

    (loss_a, grads_a), (loss_b, grads_b) = jax.value_and_grad(full)(params), jax.value_and_grad(chunked)(params)
    np.testing.assert_allclose(float(loss_a), float(loss_b), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_a), jax.tree.leaves(grads_b)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["runs/tpu_v4_8_pretrain.gin", "runs/multihost_gpu.gin", "models/t5_1_1_small.gin",
                                  "models/gpt2_small.gin", "quickstart.gin", "smoke.gin"])
def test_example_gin_configs_parse_and_build_their_configs(name):
    import gin

    from lowres.gin_files import parse_gin
    from lowres.data.config import DataConfig
    from lowres.checkpoints.store import CheckpointConfig
    from lowres.training.optimizer import OptimizerConfig
    from lowres.training.trainer import TrainConfig

    gin.clear_config()
    try:
        parse_gin([name], [], registers="lowres.jobs")  # includes resolve against gin_configs/ from any directory
        for configurable in (TrainConfig, DataConfig, OptimizerConfig, CheckpointConfig, ModelConfig,
                             partitioning.MeshConfig):
            configurable()  # every binding names a real field and passes validation
        # and the objective's span corruption at these lengths has a sentinel for every span
        from types import SimpleNamespace

        from lowres.data.tasks import objectives
        from lowres.data.vocab.vocabulary import VocabularyConfig

        data, sentinels = DataConfig(), SimpleNamespace(extra_ids=VocabularyConfig().num_sentinels)
        if data.source == "builtin":
            for denoiser, _ in objectives.objective(data.objective):
                objectives.check_sentinels(denoiser, data.inputs_length, data.targets_length, sentinels)
    finally:
        gin.clear_config()
