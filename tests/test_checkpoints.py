"""Initialising a run from another run's checkpoint: by name, through a mapping, with or without
its optimiser state, and a clear error naming every shape mismatch."""

import jax
import numpy as np
import pytest

from lowres.models.architecture import ModelConfig
from lowres.models import partitioning
from lowres.checkpoints.store import CheckpointConfig, CheckpointStore
from lowres.training.initialization import InitConfig, initialize_from, source_name
from lowres.training.optimizer import OptimizerConfig, make_optimizer
from lowres.training.step import leaf_names
from lowres.training.trainer import create_sharded_state


def _state(seed, **overrides):
    arch = ModelConfig(architecture="decoder_only", preset="tiny", overrides=overrides).resolve(vocab_size=64)
    optimizer, _ = make_optimizer(OptimizerConfig(), 10)
    mesh_config = partitioning.MeshConfig()
    mesh = partitioning.create_mesh(mesh_config, jax.devices()[:1])
    return create_sharded_state(arch, optimizer, mesh, mesh_config.rules, seed=seed).state


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    state = _state(seed=1)
    directory = tmp_path_factory.mktemp("source")
    store = CheckpointStore(directory / "checkpoints", CheckpointConfig(save_interval_steps=1, async_save=False))
    store.save(7, state.params, state.opt_state, {}, force=True)
    store.close()
    return directory, state


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_initialise_by_name_with_and_without_optimizer_state(source):
    directory, saved = source
    fresh = _state(seed=2)
    state, report = initialize_from(InitConfig(checkpoint=str(directory)), fresh)
    assert report["step"] == 7 and report["fresh"] == []
    for a, b in zip(_leaves(state.params), _leaves(saved.params)):
        np.testing.assert_array_equal(a, b)
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(state.opt_state), _leaves(fresh.opt_state)))
    with_opt, _ = initialize_from(InitConfig(checkpoint=str(directory), optimizer_state=True), _state(seed=2))
    for a, b in zip(_leaves(with_opt.opt_state), _leaves(saved.opt_state)):
        np.testing.assert_array_equal(a, b)


def test_mapping_and_fresh_parameters(source):
    directory, saved = source
    names = leaf_names(saved.params)
    old = dict(zip(names, _leaves(saved.params)))
    # wi_1 initialised from the checkpoint's wi_0; the final norm from a name it lacks (kept fresh)
    mapping = ((r"(.*)/mlp/wi_1", r"\1/mlp/wi_0"), (r".*final_norm/scale", "no/such/param"))
    wi_1 = next(n for n in names if n.endswith("mlp/wi_1"))
    assert source_name(wi_1, mapping) == wi_1.replace("wi_1", "wi_0")
    state, report = initialize_from(InitConfig(checkpoint=str(directory), mapping=mapping), _state(seed=2))
    assert report["fresh"] == [n for n in names if n.endswith("final_norm/scale")]
    new = dict(zip(leaf_names(state.params), _leaves(state.params)))
    np.testing.assert_array_equal(new[wi_1], old[wi_1.replace("wi_1", "wi_0")])
    with pytest.raises(ValueError, match="optimizer_state=True needs the same parameters"):
        initialize_from(InitConfig(checkpoint=str(directory), mapping=mapping, optimizer_state=True), _state(seed=2))


def test_shape_mismatches_are_named(source):
    directory, _ = source
    wider = _state(seed=2, d_ff=96)
    with pytest.raises(ValueError, match=r"mlp/wi_0 \(checkpoint .*\): checkpoint \(\d+, 32, 64\) vs model \(\d+, 32, 96\).*mlp/wo"):
        initialize_from(InitConfig(checkpoint=str(directory)), wider)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        initialize_from(InitConfig(checkpoint=str(directory / "missing")), wider)


def _dir_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_checkpoints_are_uncompressed_by_default_and_compressed_ones_still_restore(tmp_path):
    """zstd (Orbax's default) costs most of save and restore time on CPU; the store writes raw chunks
    unless `compress`, and reads either kind through the same abstract trees."""
    import jax.numpy as jnp

    tree = {"w": jnp.zeros((256, 1024), jnp.float32)}  # 1 MiB of zeros: zstd shrinks it to almost nothing
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)
    sizes = {}
    for compress in (False, True):
        directory = tmp_path / f"compress-{compress}"
        store = CheckpointStore(directory, CheckpointConfig(save_interval_steps=1, async_save=False, compress=compress))
        store.save(1, tree, tree, {"compress": compress}, force=True)
        store.close()
        sizes[compress] = _dir_bytes(directory)
        restored = CheckpointStore(directory, read_only=True).restore(None, abstract, abstract)
        assert restored["metadata"] == {"compress": compress}
        np.testing.assert_array_equal(np.asarray(restored["params"]["w"]), np.zeros((256, 1024), np.float32))
    assert sizes[False] > 2 * 2**20 > 20 * sizes[True]
