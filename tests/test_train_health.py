"""Non-finite steps: skipped or stopped with the step and tensor names; the last checkpoint stays
intact; loss spikes are counted; checkpoint keep policies."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lowres.data.config import DataConfig
from lowres.data.vocab.vocabulary import VocabularyConfig
from lowres.models.architecture import ModelConfig
from lowres.models import partitioning
from lowres.checkpoints.store import CheckpointConfig, CheckpointStore
from lowres.training.metrics import LossSpikes
from lowres.training.optimizer import OptimizerConfig, make_optimizer
from lowres.jobs import train_job
from lowres.training.trainer import TrainConfig, TrainSettings, compile_train_step, create_sharded_state
from tests.test_training import fixed_batch


@pytest.mark.parametrize("skip", [True, False])
def test_step_flags_nonfinite_gradients_and_skip_keeps_the_state(skip):
    arch = ModelConfig(preset="tiny").resolve(vocab_size=64)
    optimizer, schedule = make_optimizer(OptimizerConfig(learning_rate=1e-2, warmup_steps=0), 10)
    mesh_config = partitioning.MeshConfig()
    mesh = partitioning.create_mesh(mesh_config, jax.devices()[:1])
    sharded = create_sharded_state(arch, optimizer, mesh, mesh_config.rules, seed=0)
    step = compile_train_step(sharded, optimizer, schedule, 1e-4, mesh, mesh_config.rules, skip_nonfinite=skip)
    before = jax.tree.map(np.asarray, (sharded.state.params, sharded.state.opt_state))
    batch = fixed_batch()
    batch["decoder_loss_weights"] = batch["decoder_loss_weights"].astype(np.float32)
    batch["decoder_loss_weights"][0, 0] = np.inf
    state, metrics = step(sharded.state, batch)
    assert not bool(metrics["finite"]) and not bool(np.all(metrics["grad_finite"]))
    after = jax.tree.map(np.asarray, (state.params, state.opt_state))
    same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    assert same == skip
    assert int(state.step) == 1


def _tiny_run(model_dir, **train_kw):
    settings = TrainSettings.from_gin(
        train=TrainConfig(log_every=1, **train_kw),
        data=DataConfig(languages=["eng", "yor"], objective="causal_lm", inputs_length=16, targets_length=16,
                        batch_size=2, shuffle_buffer_size=8),
        model=ModelConfig(architecture="decoder_only", preset="tiny"),
        # an absurd learning rate: step 1 is finite, then the parameters overflow the forward pass
        optimizer=OptimizerConfig(learning_rate=1e30, warmup_steps=0, schedule="constant", clip_grad_norm=0),
        checkpoint=CheckpointConfig(save_interval_steps=1, max_to_keep=5, async_save=False),
        vocab=VocabularyConfig(kind="bytes", num_sentinels=10),
    )
    return train_job(model_dir, settings, progress=False)


def test_trainer_stops_on_nonfinite_naming_step_and_tensors_and_keeps_the_checkpoint(tmp_path, cache_dir):
    with pytest.raises(FloatingPointError, match=r"step 2: loss .*non-finite gradients: layers/.*intact"):
        _tiny_run(tmp_path / "stop", num_steps=4, nonfinite="stop")
    store = CheckpointStore(tmp_path / "stop" / "checkpoints", read_only=True)
    assert store.all_steps() == [1]
    store.close()


def test_trainer_skips_nonfinite_updates_and_counts_them(tmp_path, cache_dir, capsys):
    summary = _tiny_run(tmp_path / "skip", num_steps=4, nonfinite="skip")
    assert "skipped 1 non-finite update(s) in steps 2..2, first at step 2" in capsys.readouterr().out
    records = [json.loads(l) for l in (tmp_path / "skip" / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_steps"] for r in records] == [0, 1, 2, 3] and summary["final_step"] == 4
    meta = CheckpointStore(tmp_path / "skip" / "checkpoints", read_only=True).metadata(4)
    assert meta["skipped_steps"] == 3 and meta["data_position"]["batches_per_host"] == 4
    import tensorflow as tf

    events = list((tmp_path / "skip" / "tensorboard").glob("events.out.tfevents.*"))
    assert events, "no TensorBoard event file"
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value}
    assert {"loss", "learning_rate", "skipped_steps", "tokens_per_sec"} <= tags


def test_loss_spikes_are_counted_against_the_running_mean():
    spikes = LossSpikes(factor=1.5, decay=0.5)
    spikes.update([2.0, 2.1, 1.9, 5.0, 2.0, float("nan"), 9.0])
    assert spikes.count == 2
    again = LossSpikes(factor=1.5, decay=0.5)
    again.restore(json.loads(json.dumps(spikes.state())))
    assert again.state() == spikes.state()


def _save_all(store, steps, losses=None):
    tree = {"w": jnp.ones(2)}
    for i, step in enumerate(steps):
        metrics = None if losses is None else {"loss": losses[i]}
        store.save(step, tree, tree, {"step": step}, metrics=metrics, force=False)
    store.wait()


def test_keep_latest_plus_every_k_and_save_interval(tmp_path):
    store = CheckpointStore(tmp_path / "a", CheckpointConfig(save_interval_steps=2, max_to_keep=2, keep_every_steps=4,
                                                             async_save=False))
    _save_all(store, range(1, 15))
    assert store.all_steps() == [4, 8, 12, 14]  # saved every 2; kept: latest 2 plus multiples of 4
    store.close()


def test_keep_best_by_metric(tmp_path):
    config = CheckpointConfig(save_interval_steps=1, max_to_keep=1, best_metric="loss", best_mode="min", keep_best=2,
                              async_save=False)
    store = CheckpointStore(tmp_path / "b", config)
    _save_all(store, range(1, 7), losses=[5.0, 1.0, 4.0, 2.0, 6.0, 7.0])
    assert store.all_steps() == [2, 4, 6]  # the two lowest losses and the latest
    with pytest.raises(ValueError, match="best_metric='loss' is not among"):
        store.save(7, {"w": jnp.ones(2)}, {"w": jnp.ones(2)}, {}, metrics={"nll": 1.0})
    store.close()
    with pytest.raises(ValueError, match="save_interval"):
        CheckpointConfig(save_interval_steps=0)
