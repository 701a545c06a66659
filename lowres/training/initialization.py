"""Initialise a new run from another run's checkpoint: continued pretraining, renamed or added
parameters (architecture changes), with or without the old optimiser state; or from a local Hugging
Face checkpoint (T5 / mT5, Llama / Mistral), whose SentencePiece model becomes the run's vocabulary,
extended with the run's reserved tokens (and new pieces, `VocabularyConfig.extend_pieces`), the new
embedding rows initialised by `InitConfig.new_rows` (lowres.models.surgery).

Parameters are matched by name (`a/b/c` paths of the param dict) after applying `mapping`, a
list of (regex, replacement) pairs that turn a new name into the checkpoint's name. Parameters
the checkpoint lacks keep their fresh initialisation and are listed; a shape mismatch is an
error naming every mismatching parameter (resize vocabularies first with lowres.models.surgery).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import gin
import jax
import numpy as np

from lowres.checkpoints.store import CheckpointStore
from lowres.data.vocab import vocabulary as vocab_lib
from lowres.data.vocab.extension import VocabularyExtension
from lowres.config_fields import any_value, at_least, one_of, validated
from lowres.errors import ConfigError, MissingFileError
from lowres.interop import hf_import, hf_tokenizer
from lowres.models import surgery
from lowres.models.architecture import ArchitectureConfig, ModelConfig
from lowres.training.step import TrainState, leaf_names

# ModelConfig.overrides a run from an HF checkpoint may set: how it computes, not what it computes.
HF_OVERRIDABLE = ("dropout_rate", "dtype", "param_dtype", "scan_layers", "remat", "attention")


@gin.configurable
@validated(checkpoint=any_value("a run or checkpoints directory"), step=at_least(0),
           hf_checkpoint=any_value("a Hugging Face model directory"),
           new_rows=one_of(*(m for m in surgery.METHODS if m != "focus")))  # fmt: skip
@dataclasses.dataclass(frozen=True)
class InitConfig:
    """`checkpoint`: a model directory (its latest or `step`) or a checkpoints directory."""

    checkpoint: str | None = None
    step: int | None = None
    mapping: tuple[tuple[str, str], ...] = ()
    optimizer_state: bool = False
    # A local HF model directory (config.json, safetensors, spiece.model or tokenizer.model).
    hf_checkpoint: str | None = None
    new_rows: str = "mean_of_pieces"  # lowres.models.surgery.METHODS, for ids the HF vocabulary lacks

    def __post_init__(self):
        if self.checkpoint and self.hf_checkpoint:
            raise ConfigError("set InitConfig.checkpoint or InitConfig.hf_checkpoint, not both")


def _store(path: Path) -> CheckpointStore:
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if not directory.is_dir():
        raise MissingFileError(f"InitConfig.checkpoint={str(path)!r}: no such directory")
    return CheckpointStore(directory, read_only=True)


def source_name(name: str, mapping) -> str:
    for pattern, replacement in mapping:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, replacement, name)
    return name


def initialize_from(config: InitConfig, state: TrainState) -> tuple[TrainState, dict[str, Any]]:
    """`state` with its parameters (and optionally optimiser state) taken from the checkpoint."""
    store = _store(Path(config.checkpoint))
    try:
        step = config.step if config.step is not None else store.latest_step()
        if step is None:
            raise MissingFileError(f"InitConfig.checkpoint={config.checkpoint!r} holds no checkpoint")
        if step not in store.all_steps():
            raise MissingFileError(f"InitConfig.step={step}: {config.checkpoint!r} holds steps "
                                   f"{', '.join(map(str, store.all_steps()))}")  # fmt: skip
        import orbax.checkpoint as ocp

        items = {"params": ocp.args.StandardRestore()}
        if config.optimizer_state:
            items["opt_state"] = ocp.args.StandardRestore()
        restored = store.manager.restore(step, args=ocp.args.Composite(**items))
    finally:
        store.close()

    old = dict(zip(leaf_names(restored["params"]), jax.tree.leaves(restored["params"])))
    new_leaves, treedef = jax.tree.flatten(state.params)
    names = leaf_names(state.params)
    loaded, fresh, mismatches, values = [], [], [], []
    for name, leaf in zip(names, new_leaves):
        source = source_name(name, config.mapping)
        if source not in old:
            fresh.append(name)
            values.append(leaf)
            continue
        value = old[source]
        if tuple(value.shape) != tuple(leaf.shape):
            mismatches.append(f"{name} (checkpoint {source}): checkpoint {tuple(value.shape)} vs model {tuple(leaf.shape)}")
            continue
        loaded.append(name)
        values.append(jax.device_put(np.asarray(value).astype(leaf.dtype), leaf.sharding))
    if mismatches:
        raise ConfigError(
            f"InitConfig.checkpoint={config.checkpoint!r} (step {step}) does not fit this model: "
            + "; ".join(mismatches)
            + ". Map names with InitConfig.mapping, or resize vocabulary matrices with lowres.models.surgery first"
        )
    if not loaded:
        raise ConfigError(f"InitConfig.checkpoint={config.checkpoint!r}: no parameter name matches this model")
    params = jax.tree.unflatten(treedef, values)
    opt_state = state.opt_state
    if config.optimizer_state:
        if fresh or config.mapping:
            raise ConfigError("InitConfig.optimizer_state=True needs the same parameters under the same names")
        old_opt = jax.tree.leaves(restored["opt_state"])
        new_opt, opt_def = jax.tree.flatten(state.opt_state)
        if len(old_opt) != len(new_opt) or any(np.shape(a) != np.shape(b) for a, b in zip(old_opt, new_opt)):
            raise ConfigError("InitConfig.optimizer_state=True: the checkpoint's optimiser state has another structure "
                             "(a different optimiser?); set optimizer_state=False")
        opt_state = jax.tree.unflatten(
            opt_def, [jax.device_put(np.asarray(a).astype(b.dtype), b.sharding) for a, b in zip(old_opt, new_opt)]
        )
    report = {"checkpoint": str(config.checkpoint), "step": step, "loaded": len(loaded), "fresh": fresh,
              "optimizer_state": config.optimizer_state}
    return TrainState(step=state.step, params=params, opt_state=opt_state), report


def hf_vocabulary(init: InitConfig, vocab: vocab_lib.VocabularyConfig) -> vocab_lib.VocabularyConfig:
    """`vocab` for a run from `init.hf_checkpoint`: the checkpoint's SentencePiece model as the base
    (extended by the run, see `VocabularyConfig.base_model`), with its number of sentinels."""
    directory = Path(init.hf_checkpoint)
    if not directory.is_dir():
        raise MissingFileError(f"InitConfig.hf_checkpoint={init.hf_checkpoint!r}: no such directory")
    model = hf_tokenizer.sentencepiece_file(directory)
    if model is None:
        raise ConfigError(
            f"InitConfig.hf_checkpoint={init.hf_checkpoint!r} has no SentencePiece model "
            f"({' or '.join(hf_tokenizer.SENTENCEPIECE_FILES)}); lowres vocabularies are SentencePiece or bytes, so "
            "byte-level BPE tokenizers (tokenizer.json only: Llama 3, Qwen2) cannot be a run's vocabulary"
        )
    if vocab.kind != "sentencepiece":
        raise ConfigError(f"VocabularyConfig.kind={vocab.kind!r}: a run from InitConfig.hf_checkpoint uses the "
                          "checkpoint's SentencePiece model; remove the binding")  # fmt: skip
    return dataclasses.replace(vocab, base_model=str(model), num_sentinels=hf_import.num_sentinels(directory))


def hf_model_config(imported: ArchitectureConfig, model: ModelConfig, vocab_size: int) -> ArchitectureConfig:
    """The imported checkpoint's config at the run's `vocab_size`, with the `ModelConfig.overrides` that
    change only how it computes (`HF_OVERRIDABLE`), and `ModelConfig.attention`."""
    overrides = dict(model.overrides)
    if model.attention is not None:
        overrides["attention"] = model.attention
    refused = sorted(set(overrides) - set(HF_OVERRIDABLE))
    if refused or model.norm not in (None, "pre"):
        setting = f"ModelConfig.overrides {refused}" if refused else f"ModelConfig.norm={model.norm!r}"
        raise ConfigError(f"{setting}: a run from InitConfig.hf_checkpoint keeps the checkpoint's architecture; "
                          f"only {list(HF_OVERRIDABLE)} may be overridden")  # fmt: skip
    return dataclasses.replace(imported, vocab_size=vocab_size, **overrides)


def hf_params(checkpoint: hf_import.HFCheckpoint, extension: VocabularyExtension | None, method: str,
              seed: int) -> dict[str, Any]:  # fmt: skip
    """The checkpoint's parameters with the vocabulary matrices resized to the run's extended vocabulary."""
    if extension is None:
        return checkpoint.params
    matrices = [surgery.VocabMatrix(("token_embed", "embedding"), 0)]
    if not checkpoint.config.tie_embeddings:
        matrices.append(surgery.VocabMatrix(("logits_kernel",), 1))
    return surgery.resize_params(checkpoint.params, extension.id_map, method, matrices, rng_seed=seed,
                                 new_token_pieces=extension.new_token_pieces)  # fmt: skip


def place_params(state: TrainState, params: Any, where: str) -> TrainState:
    """`state` with its parameters replaced by `params` (same names and shapes), placed as the state's are."""
    given = dict(zip(leaf_names(params), jax.tree.leaves(params)))
    leaves, treedef = jax.tree.flatten(state.params)
    names = leaf_names(state.params)
    missing = [name for name in names if name not in given]
    wrong = [f"{name}: {np.shape(given[name])} vs model {tuple(leaf.shape)}" for name, leaf in zip(names, leaves)
             if name in given and tuple(np.shape(given[name])) != tuple(leaf.shape)]  # fmt: skip
    if missing or wrong:
        raise ConfigError(f"{where} does not fit the model: " + "; ".join(wrong + [f"{m} missing" for m in missing]))
    values = [jax.device_put(np.asarray(given[name]).astype(leaf.dtype), leaf.sharding)
              for name, leaf in zip(names, leaves)]  # fmt: skip
    return TrainState(step=state.step, params=jax.tree.unflatten(treedef, values), opt_state=state.opt_state)
