"""A trained model read back from its run directory: what inference, evaluation, translationese scoring,
benchmarks and export all start from."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import seqio
from flax import nnx

from lowres import run_dir
from lowres.checkpoints.store import CheckpointStore, DamagedCheckpointError
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.models.architecture import (
    Architecture,
    ArchitectureConfig,
    abstract_split,
    architecture_for,
    build_model,
    config_from_dict,
    config_to_dict,
    non_param_state,
)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A model's parts at one step: the run's settings, its config and vocabulary, and the parameters."""

    info: run_dir.RunInfo
    config: ArchitectureConfig
    vocabulary: seqio.Vocabulary
    graphdef: nnx.GraphDef
    rest: Any  # non-parameter state (dropout RNG streams), see models.architecture.non_param_state
    params: Any
    step: int
    model_dir: Path | None = None

    @property
    def architecture(self) -> Architecture:
        return architecture_for(self.config)

    @classmethod
    def initialized(cls, config: ArchitectureConfig, vocabulary: seqio.Vocabulary, *, seed: int = 0,
                    inputs_length: int = 128, targets_length: int = 128) -> TrainedModel:
        """A freshly initialised model in the same form (benchmarks, tests, decoding before training)."""
        graphdef, params, rest = nnx.split(build_model(config, seed), nnx.Param, ...)
        info = run_dir.RunInfo(config_to_dict(config), vocabulary="", num_sentinels=0, inputs_length=inputs_length,
                               targets_length=targets_length)
        return cls(info, config, vocabulary, graphdef, rest, nnx.to_pure_dict(params), step=0)


def load_run_vocabulary(model_dir: str | Path, info: run_dir.RunInfo | None = None) -> seqio.Vocabulary:
    """The vocabulary a run trained with (read from the run directory)."""
    info = info or run_dir.read_run_info(model_dir)
    return vocab_lib.load_vocabulary(Path(model_dir) / info.vocabulary, info.num_sentinels)


def runnable_on(config: ArchitectureConfig, backend: str) -> ArchitectureConfig:
    """`config` as this backend can run it: a run trained with cuDNN attention on a GPU, restored on a CPU or
    TPU host (evaluation, export, translation), computes the same function through XLA."""
    if config.attention == "cudnn" and backend != "gpu":
        return dataclasses.replace(config, attention="dot_product")
    return config


def load_trained_model(model_dir: str | Path, step: int | None = None) -> TrainedModel:
    """Restores the parameters of `step` (default: the latest) on one device, with everything to use them."""
    model_dir = Path(model_dir)
    info = run_dir.read_run_info(model_dir)
    config = config_from_dict(info.model)
    config = runnable_on(config, jax.default_backend())
    vocabulary = load_run_vocabulary(model_dir, info)
    graphdef, abstract_params = abstract_split(config)
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), nnx.to_pure_dict(abstract_params)
    )
    store = CheckpointStore(model_dir / run_dir.CHECKPOINT_DIR, read_only=True)
    try:
        restored = store.restore(step, abstract)
    except DamagedCheckpointError as error:
        damaged = store.existing_step(step)
        intact = store.latest_intact_step(below=damaged)
        advice = f"pass --step={intact} (the newest intact one)" if intact is not None else "no older step is intact"
        raise DamagedCheckpointError(f"{error}; {advice}") from error
    finally:
        store.close()
    return TrainedModel(info, config, vocabulary, graphdef, non_param_state(config), restored["params"],
                        int(restored["step"]), model_dir)
